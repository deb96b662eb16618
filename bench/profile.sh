#!/usr/bin/env bash
# Profiles Lifeline's gateway on the benchmark's hot paths and prints where the time and memory go.
#
#   bench/profile.sh            after bench/run.sh has built bench/.work (or run.sh --quick once)
#   REGION=plain bench/profile.sh           regions on plain HTTP (default: https, the production path)
#   PROTOCOL=http1 bench/profile.sh         the region client for an https region (default: auto, HTTP/2)
#
# Starts the mock upstream and the gateway (bench/cmd/lifelinegw, the same package `lifeline serve` runs, with
# pprof on 127.0.0.1:19116), pinned like run.sh does, then:
#   1. closed loop (wrk, 64 connections): a CPU profile and the allocations per request;
#   2. 2,000 slow streams held open: a heap profile (what each open stream keeps).
# Profiles are written to bench/results/raw/profile-*.pprof; summaries go to stdout.
set -eu
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
OUT=$BENCH/results/raw
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
DUR=${DUR:-12}
REGION=${REGION:-https} PROTOCOL=${PROTOCOL:-auto}
set +e # below: reporting pipelines (head closes pipes early)
mkdir -p "$OUT" "$WORK/pids"
(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/loadgen ./bench/cmd/lifelinegw)
"$WORK/bin/loadgen" certs -dir "$WORK/profile-certs"
CA=$WORK/profile-certs/ca.pem
ENDPOINT=http://127.0.0.1:19300
[[ $REGION == https ]] && ENDPOINT=https://127.0.0.1:19301

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$WORK/profile-lifeline.yaml" <<EOF
listen: 127.0.0.1:19305
clients:
  - name: bench
    key: bench-client-key
admin:
  listen: 127.0.0.1:19315
  key: bench-admin-key
logging:
  level: warn
regions:
  - name: primary
    endpoint: $ENDPOINT
    protocol: $PROTOCOL
    api_key: bench-upstream-key
    priority: 1
    deployments:
      gpt-4o: gpt-4o
EOF
taskset -c "$SERVER_CPU" "$WORK/bin/mockupstream" -listen 127.0.0.1:19300,https://127.0.0.1:19301 \
	-cert "$WORK/profile-certs/cert.pem" -key "$WORK/profile-certs/key.pem" >"$WORK/profile-mock.log" 2>&1 &
pids+=($!)
echo "== regions: $ENDPOINT (protocol $PROTOCOL)"
SSL_CERT_FILE=$CA taskset -c "$SERVER_CPU" "$WORK/bin/lifelinegw" -config "$WORK/profile-lifeline.yaml" -pprof 127.0.0.1:19316 \
	>"$WORK/profile-lifeline.log" 2>&1 &
LL=$!
pids+=($LL)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/19305) 2>/dev/null && break || sleep 0.1; done

URL='http://127.0.0.1:19305/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21'
cat >"$WORK/profile-wrk.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["api-key"] = "bench-client-key"
EOF
PP=http://127.0.0.1:19316/debug/pprof
curl -s -o "$OUT/profile-allocs-before.pprof" "$PP/allocs"
taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"${DUR}s" -s "$WORK/profile-wrk.lua" "$URL" >"$WORK/profile-wrk.txt" 2>&1 &
WRK=$!
sleep 1
curl -s -o "$OUT/profile-cpu.pprof" "$PP/profile?seconds=$((DUR - 3))"
wait $WRK
curl -s -o "$OUT/profile-allocs-after.pprof" "$PP/allocs"
REQS=$(awk '/requests in/{print $1}' "$WORK/profile-wrk.txt")
echo "== closed loop: $(grep -E 'Requests/sec' "$WORK/profile-wrk.txt") ($REQS requests)"
echo "== CPU, top functions by cumulative time (Lifeline's own and net/http's)"
go tool pprof -top -cum -nodecount=400 "$WORK/bin/lifelinegw" "$OUT/profile-cpu.pprof" 2>/dev/null |
	grep -E 'flat%|lifeline|net/http\.|http2|crypto/tls|Syscall6|mallocgc|gcBgMarkWorker|runtime\.schedule|findRunnable' | head -60
echo "== allocations during the run, by function (alloc_space; divide by $REQS requests)"
go tool pprof -sample_index=alloc_space -base "$OUT/profile-allocs-before.pprof" -top -nodecount=25 \
	"$WORK/bin/lifelinegw" "$OUT/profile-allocs-after.pprof" 2>/dev/null | sed -n '4,40p'
go tool pprof -sample_index=alloc_objects -base "$OUT/profile-allocs-before.pprof" -top -nodecount=0 \
	"$WORK/bin/lifelinegw" "$OUT/profile-allocs-after.pprof" 2>/dev/null | grep -m1 -E 'total' |
	awk -v r="$REQS" '{print "objects allocated in total: "$0"  (requests: "r")"}'

echo "== 2000 open streams: heap in use"
cat >"$WORK/profile-targets.json" <<EOF
{"body":"","stream_body":"","targets":[{"name":"lifeline","url":"$URL","headers":{"api-key":"bench-client-key"},"pid":$LL}]}
EOF
taskset -c "$LOAD_CPU" "$WORK/bin/loadgen" streams -targets "$WORK/profile-targets.json" -n 2000 -hold 8s \
	-out "$OUT/profile-streams.json" 2>&1 &
SP=$!
sleep 5
curl -s -o "$OUT/profile-heap-streams.pprof" "$PP/heap?gc=1"
curl -s "$PP/goroutine?debug=1" | head -n 1
wait $SP || true
go tool pprof -sample_index=inuse_space -top -nodecount=20 "$WORK/bin/lifelinegw" "$OUT/profile-heap-streams.pprof" 2>/dev/null | sed -n '4,30p'
grep -o '"rss_[a-z_]*": [0-9]*' "$OUT/profile-streams.json" | tr '\n' ' '
echo
