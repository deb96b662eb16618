#!/usr/bin/env bash
# Staleness of shared state between replicas (SPEC.md section 11): how long a manual switch or a breaker trip on one
# replica takes to act on two others through a real redis-server, and how long a change whose pub/sub message was
# lost takes to arrive by the periodic full read. About a minute; needs redis-server (scripts/setup.sh installs it).
# Writes bench/results/STALENESS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
out=bench/results/STALENESS.md
table=$(go run ./bench/cmd/staleness -n "$N")
{
  echo "# Staleness of shared state (bench/staleness.sh)"
  echo
  echo "Commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`, $(date -u +%Y-%m-%d), $(nproc) cores, N=$N; three replicas and"
  echo "redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p') on loopback, in one process (one clock)."
  echo
  echo "$table"
} > "$out"
cat "$out"
