# Shared by the scripts here: a free loopback port, and a gateway started on a config's regions and clients.
freeport() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start_gateway BINARY DIR: writes DIR/c.yaml (listen and admin on free ports, then the YAML on stdin), starts
# `BINARY serve` on it, and waits for /healthz. Sets port, aport and gw (the gateway's pid).
start_gateway() {
  port=$(freeport); aport=$(freeport)
  { printf 'listen: 127.0.0.1:%s\nadmin: {listen: "127.0.0.1:%s"}\n' "$port" "$aport"; cat; } >"$2/c.yaml"
  "$1" serve --config "$2/c.yaml" >"$2/gw.log" 2>&1 &
  gw=$!
  for _ in $(seq 50); do curl -sf "127.0.0.1:$aport/healthz" >/dev/null && return; sleep 0.2; done
  echo "the gateway did not come up; its log:" >&2; cat "$2/gw.log" >&2; return 1
}
