#!/usr/bin/env bash
# Syscalls per request of nginx and of Lifeline (HTTP/2 and HTTP/1.1 to the region), regions on HTTPS, one
# connection, counted with strace -c -f on the proxy's process over N sequential requests. The figures behind
# the syscall table of bench/results/PROFILE.md.
#
#   bench/syscalls.sh        (env: N=2000; needs strace, nginx; builds what it runs)
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
N=${N:-2000}
LOAD_CPU=${LOAD_CPU:-0} SERVER_CPU=${SERVER_CPU:-1}
PB=${SYSCALLS_PORT_BASE:-19750}
UP=$PB P_NGINX=$((PB + 2)) P_AUTO=$((PB + 3)) P_H1=$((PB + 4))
export PATH=$PATH:/usr/sbin
command -v strace >/dev/null || { echo "syscalls.sh: strace is not installed (apt-get install strace)" >&2; exit 1; }
mkdir -p "$WORK/bin" "$WORK/sc"
S=$WORK/sc
pids=()
# Lifeline drains for server.shutdown_delay on SIGTERM: what is still there after a second is killed.
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { local n=$1; shift; taskset -c "$SERVER_CPU" "$@" >"$S/$n.log" 2>&1 & pids+=($!); eval "PID_${n//-/_}=$!"; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/loadgen ./bench/cmd/lifelinegw)
"$WORK/bin/loadgen" certs -dir "$S/certs"
CA=$S/certs/ca.pem
cat >"$S/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $S/nginx.pid;
error_log $S/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $S/body;
    proxy_temp_path $S/proxy;
    upstream mock_tls { server 127.0.0.1:$UP; keepalive 64; }
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_buffering off;
    proxy_ssl_verify on;
    proxy_ssl_trusted_certificate $CA;
    proxy_ssl_name localhost;
    proxy_ssl_session_reuse on;
    server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass https://mock_tls; } }
}
NGX
for v in auto:$P_AUTO http1:$P_H1; do
	cat >"$S/lifeline-${v%%:*}.yaml" <<YAML
listen: 127.0.0.1:${v#*:}
clients: [{name: bench, key: bench-client-key}]
admin: {listen: 127.0.0.1:$((${v#*:} + 10)), key: bench-admin-key}
logging: {level: warn}
regions:
  - {name: primary, endpoint: "https://127.0.0.1:$UP", protocol: ${v%%:*}, api_key: bench-upstream-key, deployments: {gpt-4o: gpt-4o}}
YAML
done
start mock "$WORK/bin/mockupstream" -cert "$S/certs/cert.pem" -key "$S/certs/key.pem" -listen https://127.0.0.1:$UP
start nginx nginx -c "$S/nginx.conf" -e "$S/nginx-error.log"
start auto env SSL_CERT_FILE="$CA" "$WORK/bin/lifelinegw" -config "$S/lifeline-auto.yaml"
start http1 env SSL_CERT_FILE="$CA" "$WORK/bin/lifelinegw" -config "$S/lifeline-http1.yaml"
for p in $UP $P_NGINX $P_AUTO $P_H1; do wait_port $p || { echo "syscalls.sh: port $p did not open" >&2; exit 1; }; done
AZ="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
worker=$(pgrep -P "$PID_nginx" | head -n 1) # the worker does the proxying; the master sleeps
printf '%-28s %s\n' "peer" "syscalls per request (one connection, $N requests): name=count ..."
for t in "nginx:$P_NGINX:bench-upstream-key:$worker" "lifeline-auto:$P_AUTO:bench-client-key:$PID_auto" \
	"lifeline-http1:$P_H1:bench-client-key:$PID_http1"; do
	IFS=: read -r name port key pid <<<"$t"
	printf '{"body":"{\\"model\\":\\"gpt-4o\\",\\"messages\\":[{\\"role\\":\\"user\\",\\"content\\":\\"Say hello.\\"}]}","ca":"%s","targets":[{"name":"%s","url":"http://127.0.0.1:%s%s","headers":{"api-key":"%s"},"pid":%s}]}' \
		"$CA" "$name" "$port" "$AZ" "$key" "$pid" >"$S/t-$name.json"
	taskset -c "$LOAD_CPU" "$WORK/bin/loadgen" seq -targets "$S/t-$name.json" -rounds 1 -n 200 -warmup 50 -out "$S/warm.json" 2>/dev/null
	strace -c -f -p "$pid" -o "$S/strace-$name.txt" 2>/dev/null &
	sp=$!
	sleep 0.5
	taskset -c "$LOAD_CPU" "$WORK/bin/loadgen" seq -targets "$S/t-$name.json" -rounds 1 -n "$N" -warmup 0 -out "$S/seq.json" 2>/dev/null
	sleep 0.3
	kill -INT $sp
	wait $sp 2>/dev/null || true
	# strace -c: "% time seconds usecs/call calls [errors] syscall"; the calls column is the 4th.
	awk -v n="$N" -v name="$name" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { c[$NF] = $4 / n; t += $4 / n }
		END { printf "%-28s total %5.1f:", name, t; for (k in c) if (c[k] >= 0.05) printf " %s=%.2f", k, c[k]; printf "\n" }' "$S/strace-$name.txt"
done
