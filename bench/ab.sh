#!/usr/bin/env bash
# A/B: the gateway built from a git revision (default HEAD) against the working tree, with nginx, the plain
# Go proxy and direct in the same rounds, on the production path (clients on plain HTTP, regions on HTTPS)
# and on the plain-HTTP path. For every change on the request path; bench/run.sh is the full report.
#
#   bench/ab.sh [REV]      (env: ROUNDS=5 DURATION=3s SEQ_N=1000 SSE_N=10 AB_PATHS="https plain"
#                           PROTOCOL=auto|http1: the region client of both builds on the HTTPS path;
#                           BASE_POLICY, NEW_POLICY: YAML lines for that build's `policy:` section)
#   NEW_POLICY='stream_upstream: false' bench/ab.sh HEAD    the cost of a policy setting, one build against itself
#
# Prints, per path and scenario, each target's median over rounds and the new build's ratios, CPU per request
# included (CPU time of the target's processes over a closed-loop run, from /proc, divided by the requests
# answered). Raw JSON in bench/.work/ab-PATH-*.json. About four minutes with the defaults.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
REV=${1:-HEAD}
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-3s} SEQ_N=${SEQ_N:-1000} SSE_N=${SSE_N:-10}
AB_PATHS=${AB_PATHS:-https plain} PROTOCOL=${PROTOCOL:-auto}
LOAD_CPU=${LOAD_CPU:-0} SERVER_CPU=${SERVER_CPU:-1} NICE=${NICE:--15}
PB=${AB_PORT_BASE:-19400}
UP=$PB TUP=$((PB + 1))
# per path: nginx +2, goproxy +3, base +4, new +5 (admin +10); plain at PB+0.., https at PB+20..
declare -A OFF=([plain]=0 [https]=20)
mkdir -p "$WORK/bin" "$WORK/nginx-tmp"
export PATH=$PATH:/usr/sbin

pids=()
# Lifeline drains for server.shutdown_delay on SIGTERM: what is still there after a second is killed.
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# start NAME CMD...: pinned to the servers' core; $! is the server's own PID (taskset, nice and env exec it).
start() { local n=$1; shift; taskset -c "$SERVER_CPU" nice -n "$NICE" "$@" >"$WORK/ab-$n.log" 2>&1 & pids+=($!); eval "PID_${n//-/_}=$!"; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/goproxy ./bench/cmd/loadgen)
(cd "$ROOT" && go build -o "$WORK/bin/ab-new" ./bench/cmd/lifelinegw)
tmp=$(mktemp -d)
git -C "$ROOT" worktree add -q --detach "$tmp/src" "$REV"
# The base is built with the working tree's bench/cmd/lifelinegw, so that both run the same harness.
cp "$ROOT/bench/cmd/lifelinegw/main.go" "$tmp/src/bench/cmd/lifelinegw/main.go"
(cd "$tmp/src" && go build -o "$WORK/bin/ab-base" ./bench/cmd/lifelinegw)
git -C "$ROOT" worktree remove --force "$tmp/src"
rm -rf "$tmp"
CERTS=$WORK/ab-certs
"$WORK/bin/loadgen" certs -dir "$CERTS"
CA=$CERTS/ca.pem

cfg() { # cfg OUT PORT REGION_URL PROTOCOL [POLICY_LINES]
	cat >"$1" <<YAML
listen: 127.0.0.1:$2
clients:
  - name: bench
    key: bench-client-key
admin:
  listen: 127.0.0.1:$(($2 + 10))
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
	if [[ -n ${5:-} ]]; then
		printf 'policy:\n' >>"$1"
		printf '%s\n' "$5" | sed 's/^/  /' >>"$1"
	fi
}
for path in $AB_PATHS; do
	o=$((PB + OFF[$path]))
	region=http://127.0.0.1:$UP proto=auto
	[[ $path == https ]] && region=https://127.0.0.1:$TUP proto=$PROTOCOL
	cfg "$WORK/ab-base-$path.yaml" $((o + 4)) "$region" "$proto" "${BASE_POLICY:-}"
	cfg "$WORK/ab-new-$path.yaml" $((o + 5)) "$region" "$proto" "${NEW_POLICY:-}"
done
cat >"$WORK/ab-nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $WORK/ab-nginx.pid;
error_log $WORK/ab-nginx-error.log warn;
events { worker_connections 4096; multi_accept on; }
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
    server { listen 127.0.0.1:$((PB + OFF[plain] + 2)); location / { proxy_pass http://mock; } }
    server { listen 127.0.0.1:$((PB + OFF[https] + 2)); location / { proxy_pass https://mock_tls; } }
}
NGX
start mock "$WORK/bin/mockupstream" -cert "$CERTS/cert.pem" -key "$CERTS/key.pem" -listen 127.0.0.1:$UP,https://127.0.0.1:$TUP
start nginx nginx -c "$WORK/ab-nginx.conf" -e "$WORK/ab-nginx-error.log"
ports=($UP $TUP)
for path in $AB_PATHS; do
	o=$((PB + OFF[$path]))
	up=http://127.0.0.1:$UP
	[[ $path == https ]] && up=https://127.0.0.1:$TUP
	start goproxy-$path env SSL_CERT_FILE="$CA" "$WORK/bin/goproxy" -listen 127.0.0.1:$((o + 3)) -upstream "$up"
	start base-$path env SSL_CERT_FILE="$CA" "$WORK/bin/ab-base" -config "$WORK/ab-base-$path.yaml"
	start new-$path env SSL_CERT_FILE="$CA" "$WORK/bin/ab-new" -config "$WORK/ab-new-$path.yaml"
	ports+=($((o + 2)) $((o + 3)) $((o + 4)) $((o + 5)))
done
for p in "${ports[@]}"; do wait_port "$p" || { echo "ab.sh: port $p did not open" >&2; exit 1; }; done

AZ="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
t() { printf '{"name":"%s","mode":"","url":"%s%s","headers":{"api-key":"%s"},"pid":%s,"skip":""}' "$1" "$2" "$AZ" "$3" "$4"; }
lg() { taskset -c "$LOAD_CPU" nice -n "$NICE" "$WORK/bin/loadgen" "$@"; }
med='def med: map(select(. != null)) | sort | if length==0 then 0 elif length%2==1 then .[length/2|floor] else (.[length/2-1]+.[length/2])/2 end;'
for path in $AB_PATHS; do
	o=$((PB + OFF[$path]))
	direct=http://127.0.0.1:$UP
	[[ $path == https ]] && direct=https://127.0.0.1:$TUP
	gp=PID_goproxy_$path bp=PID_base_$path np=PID_new_$path
	cat >"$WORK/ab-$path-targets.json" <<JSON
{"body":"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16}",
"stream_body":"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16,\"stream\":true,\"user\":\"interval=5ms,chunks=20\"}",
"ca":"$CA","upstream_pid":$PID_mock,
"targets":[$(t direct "$direct" bench-upstream-key $PID_mock),$(t nginx http://127.0.0.1:$((o + 2)) bench-upstream-key $PID_nginx),$(t goproxy http://127.0.0.1:$((o + 3)) bench-upstream-key ${!gp}),$(t base http://127.0.0.1:$((o + 4)) bench-client-key ${!bp}),$(t new http://127.0.0.1:$((o + 5)) bench-client-key ${!np})]}
JSON
	T=$WORK/ab-$path-targets.json
	lg seq -targets "$T" -rounds "$ROUNDS" -n "$SEQ_N" -warmup 100 -out "$WORK/ab-$path-seq.json" 2>/dev/null
	lg wrk -targets "$T" -rounds "$ROUNDS" -duration "$DURATION" -out "$WORK/ab-$path-wrk.json" 2>/dev/null
	[[ $path == https ]] && lg sse -targets "$T" -rounds "$ROUNDS" -n "$SSE_N" -out "$WORK/ab-$path-sse.json" 2>/dev/null
	hdr="regions on plain HTTP"
	[[ $path == https ]] && hdr="regions on HTTPS, Lifeline protocol: $PROTOCOL"
	echo "===== path $path ($hdr): base = $REV, new = working tree; medians over $ROUNDS rounds"
	echo "== seq (one connection): p50 / p99 µs, added p50 = target - direct (per round, median)"
	jq -r "$med"' .rounds as $r | ["target","p50","p99","added_p50"], (($r|keys[]) as $k | [$k, ([$r[$k][].p50_us]|med|floor), ([$r[$k][].p99_us]|med|floor), ([range(0;$r[$k]|length) as $i | $r[$k][$i].p50_us - $r.direct[$i].p50_us]|med|floor)]) | @tsv' "$WORK/ab-$path-seq.json" | column -t
	echo "== wrk (64 connections): req/s; CPU µs per request (target's processes); new/target per round, median"
	jq -r "$med"' .rounds as $r | ["target","req/s","new/x_rps","cpu_us/req","new/x_cpu","mock_cpu_us/req"], (($r|keys[]) as $k | [$k, ([$r[$k][].rps]|med|floor), ([range(0;$r[$k]|length) as $i | $r.new[$i].rps / $r[$k][$i].rps]|med*100|floor/100), ([$r[$k][].cpu_us]|med*10|floor/10), ([range(0;$r[$k]|length) as $i | if $r[$k][$i].cpu_us > 0 then $r.new[$i].cpu_us / $r[$k][$i].cpu_us else null end]|med*100|floor/100), ([$r[$k][].upstream_cpu_us // 0]|med*10|floor/10)]) | @tsv' "$WORK/ab-$path-wrk.json" | column -t
	if [[ $path == https ]]; then
		echo "== sse: TTFT p50 µs, added vs direct"
		jq -r "$med"' .rounds as $r | ["target","ttft_p50","added"], (($r|keys[]) as $k | [$k, ([$r[$k][].ttft_p50_us]|med|floor), ([range(0;$r[$k]|length) as $i | $r[$k][$i].ttft_p50_us - $r.direct[$i].ttft_p50_us]|med|floor)]) | @tsv' "$WORK/ab-$path-sse.json" | column -t
	fi
done
