#!/usr/bin/env bash
# A/B: the gateway built from a git revision (default HEAD) against the working tree, with nginx, the plain
# Go proxy and direct in the same rounds. For iterating on the hot path; bench/run.sh is the full report.
#
#   bench/ab.sh [REV]      (env: ROUNDS=5 DURATION=3s SEQ_N=1000 SSE_N=10)
#
# Prints, per scenario, each target's median over rounds and Lifeline's ratios; raw JSON in bench/.work/ab-*.json.
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
REV=${1:-HEAD}
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-3s} SEQ_N=${SEQ_N:-1000} SSE_N=${SSE_N:-10}
LOAD_CPU=${LOAD_CPU:-0} SERVER_CPU=${SERVER_CPU:-1} NICE=${NICE:--15}
PB=${AB_PORT_BASE:-19400}
UP=$PB P_NGINX=$((PB + 2)) P_GOPROXY=$((PB + 3)) P_BASE=$((PB + 4)) P_NEW=$((PB + 5))
mkdir -p "$WORK/bin" "$WORK/nginx-tmp"
export PATH=$PATH:/usr/sbin

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { local n=$1; shift; taskset -c "$SERVER_CPU" nice -n "$NICE" "$@" >"$WORK/ab-$n.log" 2>&1 & pids+=($!); eval "PID_$n=$!"; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/goproxy ./bench/cmd/loadgen)
(cd "$ROOT" && go build -o "$WORK/bin/ab-new" ./bench/cmd/lifelinegw)
tmp=$(mktemp -d)
git -C "$ROOT" worktree add -q --detach "$tmp/src" "$REV"
(cd "$tmp/src" && go build -o "$WORK/bin/ab-base" ./bench/cmd/lifelinegw)
git -C "$ROOT" worktree remove --force "$tmp/src"
rm -rf "$tmp"

cfg() { # cfg OUT PORT
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
    endpoint: http://127.0.0.1:$UP
    api_key: bench-upstream-key
    deployments:
      gpt-4o: gpt-4o
YAML
}
cfg "$WORK/ab-base.yaml" $P_BASE
cfg "$WORK/ab-new.yaml" $P_NEW
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
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
NGX
start mock "$WORK/bin/mockupstream" -listen 127.0.0.1:$UP
start goproxy "$WORK/bin/goproxy" -listen 127.0.0.1:$P_GOPROXY -upstream http://127.0.0.1:$UP
start nginx nginx -c "$WORK/ab-nginx.conf" -e "$WORK/ab-nginx-error.log"
start base "$WORK/bin/ab-base" -config "$WORK/ab-base.yaml"
start new "$WORK/bin/ab-new" -config "$WORK/ab-new.yaml"
for p in $UP $P_NGINX $P_GOPROXY $P_BASE $P_NEW; do wait_port $p || { echo "ab.sh: port $p did not open" >&2; exit 1; }; done

AZ="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
t() { printf '{"name":"%s","mode":"","url":"http://127.0.0.1:%s%s","headers":{"api-key":"%s"},"pid":%s,"skip":""}' "$1" "$2" "$AZ" "$3" "$4"; }
cat >"$WORK/ab-targets.json" <<JSON
{"body":"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16}",
"stream_body":"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16,\"stream\":true,\"user\":\"interval=5ms,chunks=20\"}",
"targets":[$(t direct $UP bench-upstream-key $PID_mock),$(t nginx $P_NGINX bench-upstream-key $PID_nginx),$(t goproxy $P_GOPROXY bench-upstream-key $PID_goproxy),$(t base $P_BASE bench-client-key $PID_base),$(t new $P_NEW bench-client-key $PID_new)]}
JSON
lg() { taskset -c "$LOAD_CPU" nice -n "$NICE" "$WORK/bin/loadgen" "$@"; }
lg seq -targets "$WORK/ab-targets.json" -rounds "$ROUNDS" -n "$SEQ_N" -warmup 100 -out "$WORK/ab-seq.json" >/dev/null
lg wrk -targets "$WORK/ab-targets.json" -rounds "$ROUNDS" -duration "$DURATION" -out "$WORK/ab-wrk.json" >/dev/null
lg sse -targets "$WORK/ab-targets.json" -rounds "$ROUNDS" -n "$SSE_N" -out "$WORK/ab-sse.json" >/dev/null

med='def med: sort | if length==0 then null elif length%2==1 then .[length/2|floor] else (.[length/2-1]+.[length/2])/2 end;'
echo "== seq (one connection): p50 / p99 µs, added p50 = target - direct, per-round medians"
jq -r "$med"' .rounds as $r | ($r|keys[]) as $k | [$k, ([$r[$k][].p50_us]|med|floor), ([$r[$k][].p99_us]|med|floor), ([range(0;$r[$k]|length) as $i | $r[$k][$i].p50_us - $r.direct[$i].p50_us]|med|floor)] | @tsv' "$WORK/ab-seq.json" | column -t
echo "== wrk (64 connections): req/s median; ratio new/x per round, median"
jq -r "$med"' .rounds as $r | ($r|keys[]) as $k | [$k, ([$r[$k][].rps]|med|floor), ([range(0;$r[$k]|length) as $i | $r.new[$i].rps / $r[$k][$i].rps]|med*100|floor/100)] | @tsv' "$WORK/ab-wrk.json" | column -t
echo "== sse: TTFT p50 µs (median over rounds), added vs direct"
jq -r "$med"' .rounds as $r | ($r|keys[]) as $k | [$k, ([$r[$k][].ttft_p50_us]|med|floor), ([range(0;$r[$k]|length) as $i | $r[$k][$i].ttft_p50_us - $r.direct[$i].ttft_p50_us]|med|floor)] | @tsv' "$WORK/ab-sse.json" | column -t
