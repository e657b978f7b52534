#!/usr/bin/env bash
# Where certgate spends its CPU in one load mode: runs certgate (pinned to CPU 0, one thread)
# under build/certgate-load (CPU 1) and samples it with `perf record -e cpu-clock` (software
# clock: works where hardware counters are not exposed), then prints the hottest symbols and the
# share of time in libcrypto, libssl, libc and certgate itself.
#
#   bash bench/profile.sh resume 1.2        # MODE (full|resume|keepalive) TLS (1.2|1.3)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
MODE=${1:-resume}; TLS=${2:-1.3}; DURATION=${DURATION:-8}; CLIENTS=${CLIENTS:-1000}
command -v perf >/dev/null || { echo "profile: perf is needed (Debian package linux-perf)" >&2; exit 2; }
[ -x build/certgate ] && [ -x build/certgate-load ] || make build >/dev/null
work=$(mktemp -d /tmp/certgate-profile.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
source bench/common.sh
bench_setup
certgate_config 18543 1
taskset -c 0 build/certgate serve -c "$work/certgate.toml" -q & pid=$!
sleep 1
load 18543 --clients "$CLIENTS" --mode "$MODE" --tls "$TLS" --connections 32 --duration 2 >/dev/null  # warm: every client's first (full) handshake
load 18543 --clients "$CLIENTS" --mode "$MODE" --tls "$TLS" --connections 32 --duration "$DURATION" > "$work/load.txt" &
sleep 1
perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$work/perf.data" -- sleep $((DURATION - 2)) 2>/dev/null
wait %2 2>/dev/null || true
cat "$work/load.txt"
[ -n "${KEEP:-}" ] && cp "$work/perf.data" "$KEEP"
echo "--- share by library"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
echo "--- hottest symbols"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -${TOP:-30}
