#!/usr/bin/env bash
# Instructions and heap allocations certgate spends per keep-alive request (all its threads,
# the W3C writer included), under valgrind's callgrind: one connection makes 1 request, then
# another makes N+1; the difference divided by N is the cost of one request, without the
# handshakes and connection set-up both runs share.
#
#   bash bench/callgrind.sh              # N=2000 HTTP=1.1 TLS=1.3
#   HTTP=1.0 bash bench/callgrind.sh     # HTTP/1.0 with Connection: keep-alive
#   KEEP=/tmp/cg.out bash bench/callgrind.sh   # keep the N-request profile for callgrind_annotate
#   MODE=full N=200 bash bench/callgrind.sh     # a new connection and full handshake per request
#   CERTGATE=/path/to/certgate bash bench/callgrind.sh   # another build (a baseline)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
N=${N:-2000}; HTTP=${HTTP:-1.1}; TLS=${TLS:-1.3}; MODE=${MODE:-keepalive}; CERTGATE=${CERTGATE:-build/certgate}
command -v valgrind >/dev/null || { echo "callgrind: valgrind is needed" >&2; exit 2; }
[ -x build/certgate ] && [ -x build/certgate-load ] || make build >/dev/null
work=$(mktemp -d /tmp/certgate-callgrind.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEPDIR:-}" ] || rm -rf "$work"' EXIT
source bench/common.sh
bench_setup
certgate_config 18643 1
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" \
  "$CERTGATE" serve -c "$work/certgate.toml" -q 2>"$work/valgrind.log" & pid=$!
for _ in $(seq 60); do (exec 3<>/dev/tcp/127.0.0.1/18643) 2>/dev/null && break; sleep 1; done
load 18643 --clients 1 --mode "$MODE" --tls "$TLS" --http "$HTTP" --connections 1 --duration 60 --requests 1 >/dev/null  # warm up
measure() {  # measure REQUESTS -> "instructions mallocs"
  callgrind_control -z "$pid" >/dev/null 2>&1
  load 18643 --clients 1 --mode "$MODE" --tls "$TLS" --http "$HTTP" --connections 1 --duration 600 --requests "$1" >/dev/null
  sleep 1  # the writer thread's share
  callgrind_control -d "$pid" >/dev/null 2>&1
  local f; f=$(ls -t "$work"/cg.*.* | head -1)
  local ir mallocs
  ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p;s/^totals: *\([0-9]*\).*/\1/p' "$f" | head -1)
  mallocs=$(python3 bench/callgrind_calls.py "$f" malloc calloc realloc aligned_alloc posix_memalign \
    "operator new(unsigned long)" "operator new[](unsigned long)")
  [ -n "${KEEP:-}" ] && [ "$1" -gt 1 ] && cp "$f" "$KEEP"
  echo "$ir ${mallocs:-0}"
}
read -r ir1 m1 <<<"$(measure 1)"
read -r irn mn <<<"$(measure $((N + 1)))"
echo "mode=$MODE http=$HTTP tls=$TLS requests=$N instructions_per_request=$(( (irn - ir1) / N ))" \
  "allocations_per_request=$(awk -v a="$mn" -v b="$m1" -v n="$N" 'BEGIN{printf "%.2f", (a - b) / n}')"
