#!/usr/bin/env bash
# Installs everything the project needs on Debian 12, idempotently, then the npm packages.
# Safe to run again: it installs only what is missing and reruns `npm ci` only when
# package-lock.json changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  kamailio kamailio-tls-modules kamailio-extra-modules kamailio-utils-modules
  kamailio-sqlite-modules sqlite3 kamailio-redis-modules redis-server
  rtpengine-daemon sip-tester baresip-core espeak-ng sox openssl tshark ca-certificates
  chromium
)
# Node.js: keep an installed one (>= 18.19); otherwise Debian's.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run this script as root)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian packages enable system services on their default ports; the project runs its
# own instances and does not need them. Leave them as the admin set them, except that a
# default kamailio listening on 5061 would collide with `npm start`, so say so.
if systemctl is-active --quiet kamailio 2>/dev/null; then
  echo "setup: note: the system kamailio service is running; stop it if it holds port 5061/5070" >&2
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<18||(a===18&&b<19)) { console.error("setup: Node.js >= 18.19 is needed, found "+process.version); process.exit(1) }'

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund
  echo "$want" > "$stamp"
fi
echo "setup: ok ($(kamailio -v | head -1 | sed 's/^version: //'), node $(node --version))"
