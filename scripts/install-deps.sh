#!/usr/bin/env bash
# Installs the Debian 12 packages certgate needs to build, test and run its demo
# (with the argument `fuzz`: also what `make fuzz` needs).
# Only what is missing is installed, so a second run is quick and needs no network.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libssl-dev openssl libcrypt-dev
  libboost1.81-dev
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev libpugixml-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libldap2-dev slapd ldap-utils libmimalloc-dev libcurl4-openssl-dev tinyproxy
  libhiredis-dev redis-server
  softhsm2 opensc libengine-pkcs11-openssl
  libnghttp2-dev nghttp2-client
  curl python3 python3-cryptography ca-certificates ccache
  haproxy
  chromium libnss3-tools nodejs fonts-dejavu-core
  libsystemd-dev systemd dpkg-dev adduser ssl-cert
  tomcat10
)
# Debian's nodejs comes without npm; NodeSource's carries its own (and conflicts with Debian's).
command -v npm >/dev/null || packages+=(npm)
# `make fuzz` (scripts/install-deps.sh fuzz) also needs clang and its libFuzzer runtime: clang 16,
# since clang 14 cannot compile std::source_location with Debian 12's libstdc++.
if [ "${1:-}" = "fuzz" ]; then
  packages+=(clang-16 libclang-rt-16-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# The browser test's driver (tests/browser): playwright-core, pinned by its package-lock.json.
browser_modules() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  [ -d "$dir/node_modules/playwright-core" ] && return 0
  (cd "$dir" && npm ci --no-audit --no-fund --silent)
}

if [ ${#missing[@]} -eq 0 ]; then
  browser_modules
  exit 0
fi

echo "certgate: installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "certgate: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
browser_modules
