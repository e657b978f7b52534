#!/usr/bin/env bash
# The decision core (src/auth) must stay pure: no OpenSSL, sockets, Asio, Beast or logging.
# And only the core names Deny* verdicts, so "where is 403.16 decided?" has one answer.
set -euo pipefail
src=$1
bad=$(grep -rnE '#include *<(openssl|boost|spdlog|sys/socket|netinet)' "$src/auth" || true)
if [ -n "$bad" ]; then
  echo "core_purity: src/auth must not include I/O or crypto libraries:" >&2
  echo "$bad" >&2
  exit 1
fi
leaks=$(grep -rn 'Verdict::Deny' "$src" --include='*.cpp' --include='*.hpp' | grep -v "^$src/auth/" || true)
if [ -n "$leaks" ]; then
  echo "core_purity: Deny verdicts are chosen only in src/auth (stage_*.cpp):" >&2
  echo "$leaks" >&2
  exit 1
fi
echo "core_purity: ok"
