#!/usr/bin/env bash
# A region that answers with an endless response header (issue 11). Usage: head.sh LIFELINE_BINARY
# Prints the gateway's peak RSS over 15 s while one request waits on that region, and what the client got.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
bin=$1
d=$(mktemp -d)
rport=$(freeport)
python3 - "$rport" <<'P' &
import socket,sys,threading
ls=socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); ls.bind(("127.0.0.1",int(sys.argv[1]))); ls.listen(64)
chunk=b"a"*65536
def serve(c):
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while True: c.sendall(chunk)
    except Exception: pass
    finally: c.close()
while True:
    c,_=ls.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()
P
region=$!
trap 'kill $region ${gw:-} 2>/dev/null; rm -rf $d' EXIT
start_gateway "$bin" "$d" <<Y
clients: [{name: app, key: appkey-0123456789}]
regions:
  - {name: eastus, endpoint: "http://127.0.0.1:$rport", api_key: k, deployments: {gpt-4o: gpt-4o}}
Y
curl -s -o "$d/out" -w '%{http_code} in %{time_total}s\n' --max-time 15 -H 'api-key: appkey-0123456789' -H 'Content-Type: application/json' \
  -d '{"model":"gpt-4o","input":"x"}' "127.0.0.1:$port/v1/embeddings" > "$d/code" &
cl=$!
peak=0
for i in $(seq 75); do
  r=$(awk '/^VmRSS/{print $2}' /proc/$gw/status); [ "$r" -gt "$peak" ] && peak=$r
  kill -0 $cl 2>/dev/null || break
  sleep 0.2
done
wait $cl || true
echo "client got: $(cat "$d/code") $(head -c 200 "$d/out")"
echo "gateway peak RSS: $((peak/1024)) MiB"
