#!/usr/bin/env bash
# Lifeline's own HTTP/1.x code against net/http's, in one build and the same rounds, with nginx and direct
# beside them: the figures that decide whether internal/h1srv (the client-side HTTP/1.x server) and
# failover/h1.go (the region-side HTTP/1.1 client) earn their upkeep (issue 11, point 6).
#
#   bench/clients.sh        (env: ROUNDS=5 DURATION=3s SEQ_N=1000 STREAMS_N=2000)
#
# Variants of the working tree's gateway (bench/cmd/lifelinegw), each its own process:
#   regions on HTTPS:  h2          protocol auto: net/http's HTTP/2 client (the default), own HTTP/1.x server
#                      http1       protocol http1: whatever HTTP/1.1 client this build gives such regions
#                                  (Lifeline's own failover/h1.go up to issue 11's decision, net/http's after it)
#                      nethttp-h1  net/http's Transport, HTTP/1.1 only (-region-client net/http-h1)
#                      h2-srv      as h2, with server.http1: net/http (net/http's server for clients)
#   regions on plain HTTP:  http1 (the default there), nethttp-h1, http1-srv (server.http1: net/http)
# Prints per path: added p50 (one connection), closed-loop req/s and CPU per request (the process's CPU time
# over the run from /proc, divided by the requests answered), and memory per open stream. About five minutes.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-3s} SEQ_N=${SEQ_N:-1000} STREAMS_N=${STREAMS_N:-2000}
LOAD_CPU=${LOAD_CPU:-0} SERVER_CPU=${SERVER_CPU:-1} NICE=${NICE:--15}
PB=${CLIENTS_PORT_BASE:-19500}
UP=$PB TUP=$((PB + 1)) P_NGINX=$((PB + 2)) P_NGINX_TLS=$((PB + 3))
mkdir -p "$WORK/bin" "$WORK/nginx-tmp"
export PATH=$PATH:/usr/sbin
ulimit -n "$(ulimit -Hn)"

pids=()
# Lifeline drains for server.shutdown_delay on SIGTERM: what is still there after a second is killed.
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { local n=$1; shift; taskset -c "$SERVER_CPU" nice -n "$NICE" "$@" >"$WORK/cl-$n.log" 2>&1 & pids+=($!); eval "PID_${n//-/_}=$!"; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/loadgen ./bench/cmd/lifelinegw)
CERTS=$WORK/cl-certs
"$WORK/bin/loadgen" certs -dir "$CERTS"
CA=$CERTS/ca.pem

cfg() { # cfg OUT PORT REGION_URL PROTOCOL SERVER_HTTP1
	cat >"$1" <<YAML
listen: 127.0.0.1:$2
server:
  http1: $5
clients:
  - name: bench
    key: bench-client-key
admin:
  listen: 127.0.0.1:$(($2 + 50))
  key: bench-admin-key
logging:
  level: warn
regions:
  - name: primary
    endpoint: $3
    protocol: $4
    api_key: bench-upstream-key
    deployments:
      gpt-4o: gpt-4o
YAML
}
cat >"$WORK/cl-nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/cl-nginx.pid;
error_log $WORK/cl-nginx-error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    keepalive_requests 1000000;
    upstream mock { server 127.0.0.1:$UP; keepalive 1024; keepalive_requests 1000000; }
    upstream mock_tls { server 127.0.0.1:$TUP; keepalive 1024; keepalive_requests 1000000; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate $CA;
    proxy_ssl_name localhost;
    proxy_ssl_session_reuse on;
    server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://mock; } }
    server { listen 127.0.0.1:$P_NGINX_TLS; location / { proxy_pass https://mock_tls; } }
}
NGX
start mock "$WORK/bin/mockupstream" -cert "$CERTS/cert.pem" -key "$CERTS/key.pem" -listen 127.0.0.1:$UP,https://127.0.0.1:$TUP
start nginx nginx -c "$WORK/cl-nginx.conf" -e "$WORK/cl-nginx-error.log"
# name path port protocol server region-client
VARIANTS=(
	"h2 https 11 auto lifeline -"
	"http1 https 12 http1 lifeline -"
	"nethttp-h1 https 13 auto lifeline net/http-h1"
	"h2-srv https 14 auto net/http -"
	"http1 plain 21 auto lifeline -"
	"nethttp-h1 plain 22 auto lifeline net/http-h1"
	"http1-srv plain 23 auto net/http -"
)
declare -A TARGETS=([https]="" [plain]="")
for v in "${VARIANTS[@]}"; do
	read -r name path off proto srv rc <<<"$v"
	region=http://127.0.0.1:$UP
	[[ $path == https ]] && region=https://127.0.0.1:$TUP
	port=$((PB + off))
	cfg "$WORK/cl-$name-$path.yaml" $port "$region" "$proto" "$srv"
	args=(-config "$WORK/cl-$name-$path.yaml")
	[[ $rc == - ]] || args+=(-region-client "$rc")
	start "$name-$path" env SSL_CERT_FILE="$CA" "$WORK/bin/lifelinegw" "${args[@]}"
	wait_port $port || { echo "clients.sh: $name ($path) did not listen; log: $(tail -n 3 "$WORK/cl-$name-$path.log")" >&2; exit 1; }
	pv=PID_${name//-/_}_$path
	TARGETS[$path]+=",$(printf '{"name":"%s","url":"http://127.0.0.1:%s/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21","headers":{"api-key":"bench-client-key"},"pid":%s}' "$name" $port "${!pv}")"
done
for p in $UP $TUP $P_NGINX $P_NGINX_TLS; do wait_port $p || { echo "clients.sh: port $p did not open" >&2; exit 1; }; done
AZ="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
lg() { taskset -c "$LOAD_CPU" nice -n "$NICE" "$WORK/bin/loadgen" "$@"; }
med='def med: map(select(. != null)) | sort | if length==0 then 0 elif length%2==1 then .[length/2|floor] else (.[length/2-1]+.[length/2])/2 end;'
for path in https plain; do
	direct=http://127.0.0.1:$UP ngx=$P_NGINX
	[[ $path == https ]] && direct=https://127.0.0.1:$TUP ngx=$P_NGINX_TLS
	cat >"$WORK/cl-$path-targets.json" <<JSON
{"body":"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16}",
"stream_body":"", "ca":"$CA","upstream_pid":$PID_mock,
"targets":[{"name":"direct","url":"$direct$AZ","headers":{"api-key":"bench-upstream-key"},"pid":$PID_mock},
{"name":"nginx","url":"http://127.0.0.1:$ngx$AZ","headers":{"api-key":"bench-upstream-key"},"pid":$PID_nginx}${TARGETS[$path]}]}
JSON
	T=$WORK/cl-$path-targets.json
	lg seq -targets "$T" -rounds "$ROUNDS" -n "$SEQ_N" -warmup 100 -out "$WORK/cl-$path-seq.json" 2>/dev/null
	lg wrk -targets "$T" -rounds "$ROUNDS" -duration "$DURATION" -out "$WORK/cl-$path-wrk.json" 2>/dev/null
	lg streams -targets "$T" -n "$STREAMS_N" -hold 2s -ramp-timeout 30s -out "$WORK/cl-$path-streams.json" 2>/dev/null
	hdr="regions on plain HTTP"
	[[ $path == https ]] && hdr="regions on HTTPS"
	echo "===== $hdr; clients on plain HTTP; medians over $ROUNDS rounds"
	jq -r -s "$med"' (.[0].rounds) as $s | (.[1].rounds) as $w | (.[2].rounds) as $st |
		["variant","added_p50_us","req/s","cpu_us/req","cpu/nginx","KB/stream","streams"],
		(($w|keys[]) as $k | [$k,
			([range(0;$s[$k]|length) as $i | $s[$k][$i].p50_us - $s.direct[$i].p50_us]|med|floor),
			([$w[$k][].rps]|med|floor),
			([$w[$k][].cpu_us]|med*10|floor/10),
			([range(0;$w[$k]|length) as $i | $w[$k][$i].cpu_us / $w.nginx[$i].cpu_us]|med*100|floor/100),
			(if $st[$k] then (($st[$k][0].rss_peak_kb - $st[$k][0].rss_before_kb) / ([$st[$k][0].established,1]|max) * 10 | floor / 10) else "n/a" end),
			(if $st[$k] then $st[$k][0].established else "n/a" end)]) | @tsv' \
		"$WORK/cl-$path-seq.json" "$WORK/cl-$path-wrk.json" "$WORK/cl-$path-streams.json" | column -t
done
