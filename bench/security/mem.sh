#!/usr/bin/env bash
# Memory on demand (issue 11): N connections declare Content-Length 32 MiB and send one byte.
# Usage: mem.sh LIFELINE_BINARY [N]   (loopback only; prints the gateway's heap before and after)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$1; n=${2:-60}
d=$(mktemp -d)
"$bin" sim --regions eastus --port 0 --control 127.0.0.1:0 --api-key simkey >"$d/sim.log" 2>&1 &
sim=$!
trap 'kill $sim ${gw:-} 2>/dev/null; rm -rf $d' EXIT
for i in $(seq 50); do grep -q 'eastus' "$d/sim.log" && grep -qo 'http://127.0.0.1:[0-9]*' "$d/sim.log" && break; sleep 0.2; done
ep=$(grep -o 'http://127.0.0.1:[0-9]*' "$d/sim.log" | grep -v ':18000' | head -1)
start_gateway "$bin" "$d" <<Y
clients: [{name: app, key: appkey-0123456789}]
regions:
  - {name: eastus, endpoint: "$ep", api_key: simkey, deployments: {gpt-4o: gpt-4o}}
Y
heap() { awk '/^VmRSS|^VmData/{printf "%s %.1f MiB ", $1, $2/1024}' /proc/$gw/status; }
echo "region $ep; gateway RSS before: $(heap)"
python3 - "$port" "$n" "$aport" "$gw" <<'P'
import socket,sys,time,urllib.request
port,n,aport,gw=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4])
cs=[]
for i in range(n):
    s=socket.create_connection(("127.0.0.1",port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\napi-key: appkey-0123456789\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{" % (32<<20))
    cs.append(s)
time.sleep(2)
m=urllib.request.urlopen("http://127.0.0.1:%d/metrics" % aport).read().decode()
inflight=[l.split()[1] for l in m.splitlines() if l.startswith("lifeline_requests_in_flight")]
st=open("/proc/%d/status" % gw).read().splitlines(); rss=[l.split()[1] for l in st if l.startswith("VmRSS")]; vd=[l.split()[1] for l in st if l.startswith("VmData")]
print("with %d connections each declaring 32 MiB and sending 1 byte: requests in flight %s, gateway RSS %.1f MiB, VmData %.1f MiB" % (n, inflight[0], int(rss[0])/1024, int(vd[0])/1024))
P
