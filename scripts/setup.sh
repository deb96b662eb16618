#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: the npm packages of the Node end-to-end tests and, where missing,
# Debian's Chromium for the status page browser test, promtool (Debian's prometheus) for the alert rule tests,
# systemd-analyze, redis-server and nginx. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setup: Go modules"
go mod download
(cd deploy && go mod download)

# Debian packages that tests start or call: systemd-analyze (the unit's checks), redis-server and nginx (shared
# state and rolling-restart tests; each test starts its own on a free port).
missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== setup: Debian packages ${missing[*]}"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The packages' own services are not wanted: tests start their own servers on free ports.
    for s in redis-server nginx; do service "$s" stop >/dev/null 2>&1 || true; done
  else
    echo "setup: install ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

echo "== setup: npm packages for e2e/node (openai $(sed -n 's/.*"openai": "\(.*\)".*/\1/p' e2e/node/package.json))"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: Node.js 20+ and npm are required for the npm client tests; install them and run again" >&2
    exit 1
  fi
fi
(cd e2e/node && npm ci --no-audit --no-fund --loglevel=error)

echo "== setup: Chromium for the status page test"
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Chromium is required for the status page test (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi
command -v chromium || command -v chromium-browser || command -v google-chrome

echo "== setup: promtool for the alert rule tests (monitoring/)"
if ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "setup: promtool is required for the alert rule tests (Debian: apt-get install prometheus)" >&2
    exit 1
  fi
fi
promtool --version | head -1
