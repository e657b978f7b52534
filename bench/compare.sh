#!/usr/bin/env bash
# certgate and nginx side by side on the same machine, same PKI, same static file, client
# certificate required, revocation from the same local CRLs. nginx is tuned as production sites
# run it: open_file_cache (checked once a second, as certgate's file cache), an access log
# buffered 64 KB and flushed each second, a shared session cache. Each server runs pinned to CPU 0
# with one worker; the load tool (build/certgate-load) runs pinned to CPU 1. Modes run
# interleaved (certgate, nginx, certgate, nginx, ...) for ROUNDS rounds; the table shows medians
# and the ratio certgate/nginx, by rate and by the server's own CPU time per operation (from
# /proc/PID/stat), which is what to rank by when the load tool saturates its core first.
#
#   bash bench/compare.sh            # ROUNDS=5 DURATION=5 CONNECTIONS=32 CLIENTS=1000
#   MODES="full 1.3,keepalive 1.3" bash bench/compare.sh     # a subset of the modes
#   THREADS=2 bash bench/compare.sh  # 2 loops / 2 nginx workers on both CPUs; the load tool then
#                                    # shares CPU 1 with them, so rates say less than CPU per op
# Mode "fresh" is "full" with every client certificate new to the server (NEW_CLIENTS distinct
# certificates, more than one run's handshakes): nothing cached helps. Mode "keepalive10" is
# "keepalive" in HTTP/1.0 with Connection: keep-alive, the way `ab -k` and health checkers talk.
#   ONDEMAND=1 bash bench/compare.sh  # on-demand: certgate's binding is client_certificate =
#                                    # "on-demand" with a certificate needed only under /secure;
#                                    # the load asks for / (never reaching it) and nginx runs
#                                    # without client authentication: what a public visitor costs.
# Modes "h2full" (a full mTLS handshake and one HTTP/2 request per connection) and "h2keepalive"
# (one HTTP/2 connection per worker, STREAMS=8 requests in flight on each) compare with nginx's
# http2.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
CLIENTS=${CLIENTS:-1000}
IDLE=${IDLE:-1000}
THREADS=${THREADS:-1}
NEW_CLIENTS=${NEW_CLIENTS:-8000}
if [ "$THREADS" = 1 ]; then SERVER_CPUS=0; NG_AFFINITY=1; else SERVER_CPUS=0-1; NG_AFFINITY=auto; fi

command -v nginx >/dev/null || { sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo; $sudo apt-get install -y -qq nginx-light >/dev/null; }
[ -x build/certgate ] && [ -x build/certgate-load ] || make build >/dev/null

work=$(mktemp -d /tmp/certgate-compare.XXXXXX)
chmod 755 "$work"  # nginx workers run as www-data and must read the files
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
source bench/common.sh
bench_setup
mkdir -p "$work/nginx/logs"
cat "$work/pki/crl/"*.crl > "$work/pki/all-crls.pem"
chmod -R a+rX "$work"
CG_PORT=18443; NG_PORT=18444
certgate_config "$CG_PORT" "$THREADS"
ONDEMAND=${ONDEMAND:-0}
ng_client_auth="ssl_client_certificate $work/pki/root-ca.pem;
    ssl_verify_client on;
    ssl_verify_depth 4;
    ssl_crl $work/pki/all-crls.pem;"
if [ "$ONDEMAND" = 1 ]; then
  ng_client_auth="ssl_verify_client off;"
  sed -i -e 's|^ssl_flags = .*|ssl_flags = ["Ssl"]|' \
         -e 's|^  key = \(.*\)|  key = \1\n  client_certificate = "on-demand"|' "$work/certgate.toml"
  cat >> "$work/certgate.toml" <<TOML
  [[sites.locations]]
  path = "/secure"
  ssl_flags = ["Ssl", "SslNegotiateCert", "SslRequireCert"]
TOML
fi

cat > "$work/nginx.conf" <<NGINX
worker_processes $THREADS;
worker_cpu_affinity $NG_AFFINITY;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log $work/nginx/logs/access.log combined buffer=64k flush=1s;
  keepalive_requests 1000000;
  open_file_cache max=1000 inactive=20s;
  open_file_cache_valid 1s;
  open_file_cache_min_uses 1;
  open_file_cache_errors on;
  server {
    # HTTP/2 on, as on certgate (Debian 12's nginx 1.22 takes it on the listen line; "http2 on"
    # is the 1.25 spelling). ALPN lets the HTTP/1.1 modes go on speaking HTTP/1.1.
    listen 127.0.0.1:$NG_PORT ssl http2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $work/pki/server-chain.pem;
    ssl_certificate_key $work/pki/server.key;
    $ng_client_auth
    ssl_session_cache shared:SSL:20m;
    root $work/www;
  }
}
NGINX

start_servers() {
  env ${CG_ENV:-} taskset -c $SERVER_CPUS build/certgate serve -c "$work/certgate.toml" -q & cg_pid=$!
  taskset -c $SERVER_CPUS nginx -c "$work/nginx.conf" -p "$work/nginx" -g 'daemon off;' & ng_launcher=$!
  sleep 1
  ng_pids=$(pgrep -P "$ng_launcher" nginx | tr '\n' ' ')  # the workers do the work
  ng_pid=${ng_pids%% *}
  [ -n "$ng_pid" ] || { echo "nginx did not start: $(cat "$work/nginx/logs/error.log")" >&2; exit 1; }
}
stop_servers() {
  kill "$cg_pid" 2>/dev/null || true
  nginx -c "$work/nginx.conf" -p "$work/nginx" -s quit 2>/dev/null || true
  wait "$cg_pid" "$ng_launcher" 2>/dev/null || true
}
start_servers

cpu_ticks() {  # "user+system system" of one process, or "nginx": all its workers
  if [ "$1" = nginx ]; then
    local t=0 s=0 p u k; for p in $ng_pids; do read -r u k < <(awk '{print $14, $15}' "/proc/$p/stat"); t=$((t + u + k)); s=$((s + k)); done
    echo "$t $s"
  else awk '{print $14 + $15, $15}' "/proc/$1/stat"; fi
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
tick_us=$((1000000 / $(getconf CLK_TCK)))

run() {  # run SERVER MODE TLS -> "rate cpu_us_per_op p99_us sys_us_per_op"
  local port=$1 pid=$2 mode=$3 tls=$4 clients=$CLIENTS http=1.1 streams=1
  local before after out
  [ "$mode" = fresh ] && { mode=full; clients=$NEW_CLIENTS; }
  [ "$mode" = keepalive10 ] && { mode=keepalive; http=1.0; }
  # HTTP/2: a full handshake and one request per connection; or one connection per worker with
  # STREAMS requests in flight.
  [ "$mode" = h2full ] && { mode=full; http=2; }
  [ "$mode" = h2keepalive ] && { mode=keepalive; http=2; streams=${STREAMS:-8}; }
  local sys_before sys_after
  read -r before sys_before <<<"$(cpu_ticks "$pid")"
  out=$(load "$port" --clients "$clients" --mode "$mode" --tls "$tls" --http "$http" --streams "$streams" --connections "$CONNECTIONS" \
        --duration "$DURATION")
  read -r after sys_after <<<"$(cpu_ticks "$pid")"
  local requests rps p99 errors
  requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$out")
  rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$out")
  p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$out")
  errors=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$out")
  [ "$errors" = 0 ] || echo "warning: $errors errors in $mode/$tls against port $port" >&2
  echo "$rps $(awk -v t=$(( (after - before) * tick_us )) -v n="$requests" 'BEGIN{printf "%.1f", t / (n > 0 ? n : 1)}') $p99" \
    "$(awk -v t=$(( (sys_after - sys_before) * tick_us )) -v n="$requests" 'BEGIN{printf "%.1f", t / (n > 0 ? n : 1)}')"
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

[ "$ONDEMAND" = 1 ] && echo "on-demand: certgate asks no certificate at the handshake; nginx without client authentication"
echo "threads=$THREADS clients=$CLIENTS connections=$CONNECTIONS rounds=$ROUNDS duration=${DURATION}s"
printf '%-26s %12s %12s %8s %14s %14s %8s %10s %10s %8s %8s\n' mode cg_rate ng_rate ratio cg_cpu_us/op ng_cpu_us/op ratio cg_p99_us ng_p99_us cg_sys ng_sys
default_modes="full 1.3,full 1.2,fresh 1.3,resume 1.3,resume 1.2,keepalive 1.3,keepalive10 1.3,h2full 1.3,h2keepalive 1.3"
[ "$ONDEMAND" = 1 ] && default_modes="full 1.3,full 1.2,resume 1.3,keepalive 1.3"
IFS=, read -r -a specs <<<"${MODES:-$default_modes}"
[ "${MODES:-}" = none ] && specs=()
for spec in "${specs[@]}"; do
  set -- $spec
  : > "$work/cg"; : > "$work/ng"
  for _ in $(seq "$ROUNDS"); do
    run $CG_PORT $cg_pid "$1" "$2" >> "$work/cg"
    run $NG_PORT nginx "$1" "$2" >> "$work/ng"
  done
  cg_rate=$(cut -d' ' -f1 "$work/cg" | median); ng_rate=$(cut -d' ' -f1 "$work/ng" | median)
  cg_cpu=$(cut -d' ' -f2 "$work/cg" | median); ng_cpu=$(cut -d' ' -f2 "$work/ng" | median)
  cg_p99=$(cut -d' ' -f3 "$work/cg" | median); ng_p99=$(cut -d' ' -f3 "$work/ng" | median)
  cg_sys=$(cut -d' ' -f4 "$work/cg" | median); ng_sys=$(cut -d' ' -f4 "$work/ng" | median)
  label="$1 TLS$2"; [ "$1" = keepalive10 ] && label="keepalive HTTP/1.0 TLS$2"
  [ "$1" = h2full ] && label="h2 full TLS$2"; [ "$1" = h2keepalive ] && label="h2 ${STREAMS:-8} streams TLS$2"
  printf '%-26s %12.0f %12.0f %8.2f %14s %14s %8.2f %10s %10s %8s %8s\n' "$label" "$cg_rate" "$ng_rate" \
    "$(awk -v a="$cg_rate" -v b="$ng_rate" 'BEGIN{print (b > 0 ? a / b : 0)}')" "$cg_cpu" "$ng_cpu" \
    "$(awk -v a="$ng_cpu" -v b="$cg_cpu" 'BEGIN{print (b > 0 ? a / b : 0)}')" "$cg_p99" "$ng_p99" "$cg_sys" "$ng_sys"
done

# Memory per idle TLS connection: RSS with IDLE connections open, minus RSS before (one worker),
# on freshly started servers: after the load above, freed memory the allocator kept would hide
# what idle connections cost.
if [ "$THREADS" != 1 ]; then echo "(threads=$THREADS: idle memory is measured with THREADS=1)"; exit 0; fi
idle_rss() {  # idle_rss PORT PID TLS
  local port=$1 pid=$2 base held
  base=$(rss_kib "$pid")
  load "$port" --clients 50 --mode idle --tls "$3" --connections "$IDLE" --duration 6 >/dev/null &
  local lp=$!
  sleep 5
  held=$(rss_kib "$pid")
  wait $lp || true
  echo "$held $(( (held - base) * 1024 / IDLE ))"
}
echo
for tls in 1.3 1.2; do
  stop_servers
  start_servers
  read -r cg_held cg_per <<<"$(idle_rss $CG_PORT $cg_pid $tls)"
  read -r ng_held ng_per <<<"$(idle_rss $NG_PORT $ng_pid $tls)"
  printf '%d idle TLS%s connections: certgate RSS %s KiB (%s bytes/connection), nginx worker RSS %s KiB (%s bytes/connection)\n' \
    "$IDLE" "$tls" "$cg_held" "$cg_per" "$ng_held" "$ng_per"
done
echo "(cpu ratio = nginx CPU per op / certgate CPU per op: above 1 means certgate does less work;"
echo " cg_sys / ng_sys: the kernel's share of each server's CPU per op, in microseconds)"
stop_servers
