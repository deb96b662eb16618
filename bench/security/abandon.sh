#!/usr/bin/env bash
# One client hangs up on slow requests (issue 11): both regions slow (20 s), default policy. Two waves of 6
# requests from one key, each client giving up after 6.5 s; then a second key's request with patience.
# Usage: abandon.sh LIFELINE_BINARY
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$1
d=$(mktemp -d)
cport=$(freeport)
"$bin" sim --regions eastus,westus --port 0 --control 127.0.0.1:$cport --api-key simkey >"$d/sim.log" 2>&1 &
sim=$!
trap 'kill $sim ${gw:-} 2>/dev/null; rm -rf $d' EXIT
for i in $(seq 50); do [ "$(grep -c 'http://127.0.0.1' "$d/sim.log")" -ge 3 ] && break; sleep 0.2; done
e=$(grep eastus "$d/sim.log" | grep -o 'http://127.0.0.1:[0-9]*' | head -1)
w=$(grep westus "$d/sim.log" | grep -o 'http://127.0.0.1:[0-9]*' | head -1)
start_gateway "$bin" "$d" <<Y
clients:
  - {name: impatient, key: impatient-0123456789}
  - {name: patient, key: patient-0123456789}
regions:
  - {name: eastus, endpoint: "$e", api_key: simkey, deployments: {gpt-4o: gpt-4o}}
  - {name: westus, endpoint: "$w", api_key: simkey, priority: 2, deployments: {gpt-4o: gpt-4o}}
Y
for r in eastus westus; do curl -s -X POST "127.0.0.1:$cport/regions/$r/fault" -d '{"mode":"slow","latency":"20s"}' >/dev/null; done
ask() { curl -s -o /dev/null -w '%{http_code}' --max-time "$2" -H "api-key: $1" -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' "127.0.0.1:$port/v1/chat/completions" || true; }
for wave in 1 2; do
  pids=(); for i in 1 2 3 4 5 6; do ask impatient-0123456789 6.5 >/dev/null & pids+=($!); done; wait "${pids[@]}"
  sleep 0.5
  echo "after wave $wave (6 hang-ups each): $(curl -s 127.0.0.1:$aport/metrics | grep '^lifeline_region_state' | tr '\n' ' ')"
done
curl -s 127.0.0.1:$aport/metrics | grep '^lifeline_upstream_attempts_total' | tr '\n' ' '; echo
for r in eastus westus; do curl -s -X POST "127.0.0.1:$cport/regions/$r/fault" -d '{"mode":"clear"}' >/dev/null; done
echo "then the faults end; another key's request: $(ask patient-0123456789 30)"
