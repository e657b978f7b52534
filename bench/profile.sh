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
bash scripts/make-pki.sh "$work/pki" >/dev/null
mkdir -p "$work/www"; printf 'hello\n' > "$work/www/index.html"
cat > "$work/certgate.toml" <<TOML
[server]
log_dir = "$work/logs"
threads = 1
cache_dir = ""
[[sites]]
name = "Bench"
root = "$work/www"
ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
  [[sites.bindings]]
  listen = "127.0.0.1:18543"
  certificate = "$work/pki/server-chain.pem"
  key = "$work/pki/server.key"
  [sites.client_certificates]
  trusted_cas = ["$work/pki/root-ca.pem"]
  revocation = "cache-only"
  crl_files = ["$work/pki/crl"]
  [sites.mapping]
  [[sites.mapping.many_to_one]]
  name = "Staff"
  user = "staff"
    [[sites.mapping.many_to_one.rules]]
    field = "Subject"
    subfield = "OU"
    match = "Staff"
TOML
taskset -c 0 build/certgate serve -c "$work/certgate.toml" -q & pid=$!
sleep 1
load() {
  build/certgate-load --url "https://127.0.0.1:18543/" --ca "$work/pki/root-ca.pem" \
    --issuer-cert "$work/pki/issuing-ca.pem" --issuer-key "$work/pki/issuing-ca.key" \
    --clients "$CLIENTS" --mode "$MODE" --tls "$TLS" --connections 32 --duration "$1" --cpu 1
}
load 2 >/dev/null  # warm: every client's first (full) handshake
load "$DURATION" > "$work/load.txt" &
sleep 1
perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$work/perf.data" -- sleep $((DURATION - 2)) 2>/dev/null
wait %2 2>/dev/null || true
cat "$work/load.txt"
[ -n "${KEEP:-}" ] && cp "$work/perf.data" "$KEEP"
echo "--- share by library"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -8
echo "--- hottest symbols"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -${TOP:-30}
