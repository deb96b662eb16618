#!/usr/bin/env bash
# Lifeline benchmarks: Lifeline side by side with direct, nginx, Caddy, the Portkey gateway and a plain
# Go reverse proxy, in the same run, on the same mock upstream, over loopback only.
#
#   bench/run.sh            full run (about 15 minutes)
#   bench/run.sh --quick    smoke run (a few minutes)
#
# Installs its peers itself (apt: nginx wrk; go install: caddy k6; npm: @portkey-ai/gateway), builds
# the mock upstream, the Go floor, the load generator and lifeline, pins the load generator to one core
# and every server to the other, runs the scenarios round by round with direct interleaved, and writes
# bench/results/REPORT.md, bench/results/chart.svg and raw JSON under bench/results/raw/.
# Every process it starts is stopped on exit; the whole run is bounded by a watchdog.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work
RES=$BENCH/results
RAW=$RES/raw
QUICK=0
INSTALL=1
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
NICE=${NICE:--15} # the machine is shared: ask the scheduler to favour what is being measured, all peers alike
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	--no-install) INSTALL=0 ;;
	-h | --help)
		sed -n '2,12p' "$0"
		exit 0
		;;
	*)
		echo "run.sh: unknown flag $a (try --help)" >&2
		exit 2
		;;
	esac
done

# Ports, all on 127.0.0.1, from BENCH_PORT_BASE (default 19000) up to base+224.
PB=${BENCH_PORT_BASE:-19000}
UP=$PB FAIL503=$((PB + 1)) BLACKHOLE=$((PB + 2)) REFUSED=$((PB + 3)) SECONDARY=$((PB + 4))
P_GOPROXY=$((PB + 101)) P_NGINX=$((PB + 102)) P_CADDY=$((PB + 103)) P_PORTKEY=$((PB + 104))
P_LIFELINE=$((PB + 105)) A_LIFELINE=$((PB + 115))
NGX_FO_HEALTHY=$((PB + 201)) NGX_FO_503=$((PB + 202)) NGX_FO_REFUSED=$((PB + 203)) NGX_FO_BLACKHOLE=$((PB + 204))
LL_FO_BASE=$((PB + 210)) # lifeline failover instances: base+211..214, admin base+221..224
FO_TIMEOUT=1s    # how long a peer waits for a black-holed primary's answer before failing over

if ((QUICK)); then
	MAXSECS=600
	SEQ="-rounds 2 -n 500 -warmup 100"
	K6="-rounds 1 -rates 500,2000 -duration 3s"
	WRK="-rounds 2 -duration 3s"
	SSE="-rounds 1 -n 8"
	FO="-rounds 1 -duration 3s -warmup 3s"
	STREAMS_N=2000 STREAMS_HOLD=2s
else
	MAXSECS=1500
	SEQ="-rounds 5 -n 2000 -warmup 200"
	K6="-rounds 3 -rates 500,1500 -duration 3s"
	WRK="-rounds 9 -duration 3s"
	SSE="-rounds 3 -n 30"
	FO="-rounds 4 -duration 3s -warmup 2s"
	STREAMS_N=10000 STREAMS_HOLD=4s
fi

mkdir -p "$WORK/bin" "$WORK/pids" "$WORK/nginx-tmp" "$RAW"
rm -f "$WORK"/pids/*.pid "$RAW"/*.json
LOG=$WORK/run.log
: >"$LOG"
say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }

# --- lifetime: everything we start is recorded in $WORK/pids and stopped on exit --------------------
cleanup() {
	local f pid
	for f in "$WORK"/pids/*.pid; do
		[[ -e $f ]] || continue
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
	done
	sleep 0.5
	for f in "$WORK"/pids/*.pid; do
		[[ -e $f ]] || continue
		pid=$(cat "$f")
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
(
	trap 'kill $sp 2>/dev/null; exit 0' TERM
	sleep "$MAXSECS" &
	sp=$!
	wait $sp
	echo "run.sh: watchdog: run exceeded ${MAXSECS}s, stopping" >&2
	kill -TERM $$ 2>/dev/null
) &
echo $! >"$WORK/pids/watchdog.pid"

loadgen() { taskset -c "$LOAD_CPU" nice -n "$NICE" "$WORK/bin/loadgen" "$@"; }

# start NAME CMD...: a server pinned to the servers' core, logs in $WORK/NAME.log. taskset and nice exec the
# command, so $! is the server's own PID (what is stopped on exit and whose memory is measured).
start() {
	local name=$1
	shift
	taskset -c "$SERVER_CPU" nice -n "$NICE" "$@" >"$WORK/$name.log" 2>&1 &
	echo $! >"$WORK/pids/$name.pid"
}

wait_port() {
	local port=$1 i
	for i in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

# --- install ---------------------------------------------------------------------------------------
declare -A SKIP=()
GOBIN_DIR=$(go env GOPATH)/bin
export PATH=$PATH:$GOBIN_DIR

install_peers() {
	local missing=()
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
	command -v wrk >/dev/null || missing+=(wrk)
	if ((${#missing[@]})); then
		say "apt-get install ${missing[*]}"
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >>"$LOG" 2>&1 ||
			say "apt-get install ${missing[*]} failed (see $LOG)"
	fi
	if ! command -v caddy >/dev/null; then
		say "go install caddy"
		go install github.com/caddyserver/caddy/v2/cmd/caddy@latest >>"$LOG" 2>&1 || say "go install caddy failed"
	fi
	if ! command -v k6 >/dev/null; then
		say "go install k6"
		go install go.k6.io/k6@latest >>"$LOG" 2>&1 || say "go install k6 failed"
	fi
	if [[ ! -f $WORK/portkey/node_modules/@portkey-ai/gateway/build/start-server.js ]]; then
		say "npm install @portkey-ai/gateway"
		mkdir -p "$WORK/portkey"
		[[ -f $WORK/portkey/package.json ]] || echo '{"name":"bench-peers","private":true}' >"$WORK/portkey/package.json"
		(cd "$WORK/portkey" && npm install --no-audit --no-fund @portkey-ai/gateway) >>"$LOG" 2>&1 || say "npm install failed"
	fi
	patch_hono
}

# On Node 20, @hono/node-server (>1.14.2) hands a fetch() Response's immutable Headers to the gateway,
# which then fails every streaming request with "TypeError: immutable" (Portkey-AI/gateway#1389).
# The fix: copy the Headers when a lightweight Response is built from another response's init.
patch_hono() {
	local d=$WORK/portkey/node_modules/@hono/node-server/dist
	[[ -d $d ]] || return 0
	sed -i 's/body, headers || init?\.headers\];/body, headers || (init?.headers instanceof Headers ? new Headers(init.headers) : init?.headers)];/' \
		"$d"/*.js "$d"/*.mjs
}

if ((INSTALL)); then install_peers; fi
command -v nginx >/dev/null || export PATH=$PATH:/usr/sbin
command -v wrk >/dev/null || {
	say "wrk is missing: cannot run"
	exit 1
}
command -v nginx >/dev/null || SKIP[nginx]="nginx is not installed (apt-get install nginx failed)"
command -v caddy >/dev/null || SKIP[caddy]="caddy is not installed (go install failed)"
command -v node >/dev/null && [[ -f $WORK/portkey/node_modules/@portkey-ai/gateway/build/start-server.js ]] ||
	SKIP[portkey]="the Portkey gateway is not installed (npm install failed or no node)"
HAVE_K6=1
command -v k6 >/dev/null || HAVE_K6=0

say "building the bench tools and lifeline"
(cd "$ROOT" && go build -o "$WORK/bin/" ./bench/cmd/mockupstream ./bench/cmd/goproxy ./bench/cmd/loadgen ./bench/cmd/report)
rm -f "$WORK/lifeline" "$WORK/bin/lifelinegw"
(cd "$ROOT" && go build -o "$WORK/lifeline" ./cmd/lifeline) >>"$LOG" 2>&1 || say "go build ./cmd/lifeline failed (see $LOG)"
# bench/cmd/lifelinegw runs the same gateway package the same way (config.Load, gateway.New, Run); it is the
# fallback while `lifeline serve` is not wired, and it can serve pprof.
(cd "$ROOT" && go build -o "$WORK/bin/lifelinegw" ./bench/cmd/lifelinegw) >>"$LOG" 2>&1 || say "go build ./bench/cmd/lifelinegw failed (see $LOG)"
LIFELINE_RUNNER=""
if [[ ! -x $WORK/lifeline && ! -x $WORK/bin/lifelinegw ]]; then
	SKIP[lifeline]="neither ./cmd/lifeline nor the gateway package builds (see bench/.work/run.log)"
fi

# --- configs ---------------------------------------------------------------------------------------
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
ulimit -n "$NOFILE"
# A proxy holds two sockets per open stream (client side, upstream side): the hard limit on open files
# caps how many concurrent streams any peer can hold here.
MAX_STREAMS=$(((NOFILE - 1000) / 2)) # and room for the peer's other sockets (nginx counts idle upstream ones)
if ((STREAMS_N > MAX_STREAMS)); then
	say "RLIMIT_NOFILE hard limit is $NOFILE: streams scenario capped at $MAX_STREAMS (a proxy needs 2 fds per stream)"
	STREAMS_N=$MAX_STREAMS
fi

fill() { # fill TEMPLATE OUT KEY=VALUE...
	local tmpl=$1 out=$2 expr=() kv
	shift 2
	for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${expr[@]}" "$tmpl" >"$out"
}

fill "$BENCH/peers/nginx.conf.tmpl" "$WORK/nginx.conf" WORK="$WORK" NOFILE="$NOFILE" UP=$UP SECONDARY=$SECONDARY \
	FAIL503=$FAIL503 REFUSED=$REFUSED BLACKHOLE=$BLACKHOLE PORT=$P_NGINX FO_HEALTHY=$NGX_FO_HEALTHY FO_503=$NGX_FO_503 \
	FO_REFUSED=$NGX_FO_REFUSED FO_BLACKHOLE=$NGX_FO_BLACKHOLE FO_TIMEOUT=$FO_TIMEOUT
fill "$BENCH/peers/Caddyfile.tmpl" "$WORK/Caddyfile" PORT=$P_CADDY UP=$UP

lifeline_config() { # lifeline_config OUT PORT ADMIN PRIMARY WITH_SECONDARY TIMEOUT
	local sec=""
	if [[ $5 == 1 ]]; then sec=$(sed "s|@SECONDARY@|$SECONDARY|" "$BENCH/peers/lifeline-secondary.yaml.part"); fi
	fill "$BENCH/peers/lifeline.yaml.tmpl" "$1.tmp" PORT="$2" ADMIN="$3" PRIMARY="$4" RESPONSE_TIMEOUT="$6"
	awk -v sec="$sec" '$0=="@SECONDARY_BLOCK@"{if(sec!="")print sec;next}{print}' "$1.tmp" >"$1"
	rm -f "$1.tmp"
}
lifeline_config "$WORK/lifeline.yaml" $P_LIFELINE $A_LIFELINE $UP 0 30s
FO_MODES=(healthy 503 refused blackhole)
declare -A FO_PRIMARY=([healthy]=$UP [503]=$FAIL503 [refused]=$REFUSED [blackhole]=$BLACKHOLE)
for i in "${!FO_MODES[@]}"; do
	m=${FO_MODES[$i]}
	lifeline_config "$WORK/lifeline-fo-$m.yaml" $((LL_FO_BASE + i + 1)) $((LL_FO_BASE + 11 + i)) "${FO_PRIMARY[$m]}" 1 $FO_TIMEOUT
done

# --- start the servers -----------------------------------------------------------------------------
# Every port must be free: a server left over from another run would be measured in place of ours.
for port in $UP $FAIL503 $BLACKHOLE $REFUSED $SECONDARY $P_GOPROXY $P_NGINX $P_CADDY $P_PORTKEY $P_LIFELINE $A_LIFELINE \
	$NGX_FO_HEALTHY $NGX_FO_503 $NGX_FO_REFUSED $NGX_FO_BLACKHOLE $(seq $((LL_FO_BASE + 1)) $((LL_FO_BASE + 14))); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		say "port $port is in use (another run still going, or a left-over server): stop it first; ss -ltnp 'sport = :$port' names it"
		exit 1
	fi
done
start mock "$WORK/bin/mockupstream" -listen 127.0.0.1:$UP,127.0.0.1:$SECONDARY -fail503 127.0.0.1:$FAIL503 \
	-blackhole 127.0.0.1:$BLACKHOLE
start goproxy "$WORK/bin/goproxy" -listen 127.0.0.1:$P_GOPROXY -upstream http://127.0.0.1:$UP
[[ -n ${SKIP[nginx]:-} ]] || start nginx nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
[[ -n ${SKIP[caddy]:-} ]] || start caddy caddy run --config "$WORK/Caddyfile" --adapter caddyfile
[[ -n ${SKIP[portkey]:-} ]] || start portkey node "$WORK/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" \
	--port=$P_PORTKEY --headless
# start_lifeline NAME CONFIG PORT: `lifeline serve --config` if it serves, else bench/cmd/lifelinegw.
start_lifeline() {
	if [[ $LIFELINE_RUNNER != lifelinegw && -x $WORK/lifeline ]]; then
		start "$1" "$WORK/lifeline" serve --config "$2"
		if wait_port "$3"; then
			LIFELINE_RUNNER="lifeline serve"
			return 0
		fi
		kill "$(cat "$WORK/pids/$1.pid")" 2>/dev/null || true
		say "lifeline serve did not listen on $3 ($(tail -n 1 "$WORK/$1.log" 2>/dev/null)); using bench/cmd/lifelinegw"
	fi
	if [[ -x $WORK/bin/lifelinegw ]]; then
		LIFELINE_RUNNER=lifelinegw
		start "$1" "$WORK/bin/lifelinegw" -config "$2"
		wait_port "$3"
		return
	fi
	return 1
}
if [[ -z ${SKIP[lifeline]:-} ]]; then
	start_lifeline lifeline "$WORK/lifeline.yaml" $P_LIFELINE || true
	for i in "${!FO_MODES[@]}"; do
		start_lifeline "lifeline-fo-${FO_MODES[$i]}" "$WORK/lifeline-fo-${FO_MODES[$i]}.yaml" $((LL_FO_BASE + i + 1)) || true
	done
fi

declare -A PORT=([direct]=$UP [goproxy]=$P_GOPROXY [nginx]=$P_NGINX [caddy]=$P_CADDY [portkey]=$P_PORTKEY [lifeline]=$P_LIFELINE)
PEERS=(direct nginx caddy portkey goproxy lifeline)
for p in "${PEERS[@]}"; do
	[[ -z ${SKIP[$p]:-} ]] || continue
	if ! wait_port "${PORT[$p]}"; then
		SKIP[$p]="$p did not start listening on 127.0.0.1:${PORT[$p]} (log: $(tail -n 3 "$WORK/$p.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
		say "${SKIP[$p]}"
	fi
done

# --- targets ---------------------------------------------------------------------------------------
jstr() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
AZ_PATH="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
STREAM_BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true,"user":"interval=5ms,chunks=20"}'
portkey_cfg() { # portkey_cfg PRIMARY_PORT [SECONDARY_PORT]
	local t1="{\"provider\":\"openai\",\"api_key\":\"bench-upstream-key\",\"custom_host\":\"http://127.0.0.1:$1/v1\"}"
	if [[ -z ${2:-} ]]; then
		printf '%s' "$t1"
	else
		printf '{"strategy":{"mode":"fallback","on_status_codes":[408,500,502,503,504]},"request_timeout":%d,"targets":[%s,{"provider":"openai","api_key":"bench-upstream-key","custom_host":"http://127.0.0.1:%s/v1"}]}' \
			"${FO_TIMEOUT%s}000" "$t1" "$2"
	fi
}
pid_of() { cat "$WORK/pids/$1.pid" 2>/dev/null || echo 0; }
target() { # target NAME MODE URL HEADERS_JSON PIDNAME
	local skip=${SKIP[$1]:-}
	printf '{"name":%s,"mode":%s,"url":%s,"headers":%s,"pid":%s,"skip":%s}' "$(jstr "$1")" "$(jstr "$2")" \
		"$(jstr "$3")" "$4" "$(pid_of "$5")" "$(jstr "$skip")"
}
UPKEY='{"api-key":"bench-upstream-key"}'
LLKEY='{"api-key":"bench-client-key"}'
pk_headers() { printf '{"x-portkey-config":%s}' "$(jstr "$(portkey_cfg "$@")")"; }
{
	printf '{"body":%s,"stream_body":%s,"targets":[\n' "$(jstr "$BODY")" "$(jstr "$STREAM_BODY")"
	target direct "" "http://127.0.0.1:$UP$AZ_PATH" "$UPKEY" mock
	printf ',\n'
	target nginx "" "http://127.0.0.1:$P_NGINX$AZ_PATH" "$UPKEY" nginx
	printf ',\n'
	target caddy "" "http://127.0.0.1:$P_CADDY$AZ_PATH" "$UPKEY" caddy
	printf ',\n'
	target portkey "" "http://127.0.0.1:$P_PORTKEY/v1/chat/completions" "$(pk_headers $UP)" portkey
	printf ',\n'
	target goproxy "" "http://127.0.0.1:$P_GOPROXY$AZ_PATH" "$UPKEY" goproxy
	printf ',\n'
	target lifeline "" "http://127.0.0.1:$P_LIFELINE$AZ_PATH" "$LLKEY" lifeline
	printf '\n]}\n'
} >"$WORK/targets.json"
{
	printf '{"body":%s,"stream_body":%s,"targets":[\n' "$(jstr "$BODY")" "$(jstr "$STREAM_BODY")"
	sep=""
	declare -A NGX_FO=([healthy]=$NGX_FO_HEALTHY [503]=$NGX_FO_503 [refused]=$NGX_FO_REFUSED [blackhole]=$NGX_FO_BLACKHOLE)
	# Grouped by peer: a peer's healthy and failing runs follow each other, so they share the machine's mood.
	for i in "${!FO_MODES[@]}"; do
		m=${FO_MODES[$i]}
		printf '%s' "$sep"
		sep=$',\n'
		target nginx "$m" "http://127.0.0.1:${NGX_FO[$m]}$AZ_PATH" "$UPKEY" nginx
	done
	for i in "${!FO_MODES[@]}"; do
		m=${FO_MODES[$i]}
		printf ',\n'
		target portkey "$m" "http://127.0.0.1:$P_PORTKEY/v1/chat/completions" "$(pk_headers "${FO_PRIMARY[$m]}" $SECONDARY)" portkey
	done
	for i in "${!FO_MODES[@]}"; do
		m=${FO_MODES[$i]}
		printf ',\n'
		target lifeline "$m" "http://127.0.0.1:$((LL_FO_BASE + i + 1))$AZ_PATH" "$LLKEY" "lifeline-fo-$m"
	done
	printf '\n]}\n'
} >"$WORK/failover.json"

# Every target must answer one request before anything is measured; one that cannot is reported, not faked.
for p in "${PEERS[@]}"; do
	[[ -z ${SKIP[$p]:-} ]] || continue
	url=$(grep -o "\"name\":\"$p\",\"mode\":\"\",\"url\":\"[^\"]*" "$WORK/targets.json" | sed 's/.*"url":"//')
	hdr=(-H "api-key: bench-upstream-key")
	[[ $p == lifeline ]] && hdr=(-H "api-key: bench-client-key")
	[[ $p == portkey ]] && hdr=(-H "x-portkey-config: $(portkey_cfg $UP)")
	code=$(curl -s -o "$WORK/probe-$p.out" -w '%{http_code}' -m 5 -H 'content-type: application/json' "${hdr[@]}" -d "$BODY" "$url" || true)
	if [[ $code != 200 ]]; then
		SKIP[$p]="$p answered HTTP $code to a plain chat/completions request: $(head -c 200 "$WORK/probe-$p.out" 2>/dev/null)"
		say "${SKIP[$p]}"
		sed -i "s|\"name\":\"$p\",\\(.*\\)\"skip\":\"\"|\"name\":\"$p\",\\1\"skip\":$(jstr "${SKIP[$p]}" | sed 's/[|&]/\\&/g')|" \
			"$WORK/targets.json" "$WORK/failover.json"
	fi
done

# --- record the conditions -------------------------------------------------------------------------
ver() { "$@" 2>&1 | head -n 1 | tr -d '"\\' || true; }
{
	printf '{\n'
	printf '"date":%s,\n' "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
	printf '"quick":%s,\n' "$( ((QUICK)) && echo true || echo false)"
	printf '"commit":%s,\n' "$(jstr "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)")"
	printf '"kernel":%s,\n' "$(jstr "$(uname -sr)")"
	printf '"cpus":%s,\n' "$(jstr "$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))")"
	printf '"load_cpu":%s,"server_cpu":%s,"nice":%s,\n' "$(jstr "$LOAD_CPU")" "$(jstr "$SERVER_CPU")" "$(jstr "$NICE")"
	printf '"gomaxprocs_servers":%s,\n' "$(jstr "$(taskset -c "$SERVER_CPU" "$WORK/bin/loadgen" gomaxprocs) (GOMAXPROCS unset; Go reads the CPU affinity mask)")"
	printf '"nofile":%s,"streams":%s,\n' "$(jstr "$NOFILE")" "$(jstr "$STREAMS_N")"
	printf '"load_average_start":%s,\n' "$(jstr "$(cut -d' ' -f1-3 /proc/loadavg)")"
	printf '"versions":{\n'
	printf '"go":%s,\n' "$(jstr "$(go version)")"
	printf '"nginx":%s,\n' "$(jstr "$(ver nginx -v)")"
	printf '"caddy":%s,\n' "$(jstr "$(go version -m "$(command -v caddy)" 2>/dev/null | awk '$1=="mod"{print $2" "$3; exit}')")"
	printf '"portkey":%s,\n' "$(jstr "$(grep -m1 '"version"' "$WORK/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null | tr -dc '0-9.') (@hono/node-server $(grep -m1 '"version"' "$WORK/portkey/node_modules/@hono/node-server/package.json" 2>/dev/null | tr -dc '0-9.'), patched), node $(node --version 2>/dev/null)")"
	printf '"wrk":%s,\n' "$(jstr "$(wrk -v 2>&1 | head -n 1 | cut -c1-60)")"
	printf '"k6":%s,\n' "$(jstr "$(ver k6 version)")"
	printf '"lifeline":%s\n' "$(jstr "$([[ -x $WORK/lifeline ]] && ver "$WORK/lifeline" version || echo "cmd/lifeline not built"); run as: ${LIFELINE_RUNNER:-not run} (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet -- failover gateway config 2>/dev/null || echo ", with uncommitted changes in failover/gateway/config"))")"
	printf '},\n"skipped":{'
	sep=""
	for p in "${!SKIP[@]}"; do
		printf '%s%s:%s' "$sep" "$(jstr "$p")" "$(jstr "${SKIP[$p]}")"
		sep=","
	done
	printf '}\n}\n'
} >"$RAW/meta.json"

loadavg() { printf '{"scenario":%s,"load_average":%s}\n' "$(jstr "$1")" "$(jstr "$(cut -d' ' -f1-3 /proc/loadavg)")" >>"$RAW/loadavg.jsonl"; }
: >"$RAW/loadavg.jsonl"

# --- scenarios -------------------------------------------------------------------------------------
scenario() { # scenario NAME ARGS...: run, log, record load average; a failing scenario does not stop the run
	local name=$1
	shift
	say "scenario $name"
	loadavg "$name"
	loadgen "$@" 2>&1 | tee -a "$LOG" >&2 || say "scenario $name failed"
}
scenario seq seq -targets "$WORK/targets.json" $SEQ -out "$RAW/seq.json"
if ((HAVE_K6)); then
	scenario k6 k6 -targets "$WORK/targets.json" $K6 -cpu "" -dir "$WORK" -out "$RAW/k6.json"
else
	say "k6 is not installed: constant-rate scenario skipped"
fi
scenario wrk wrk -targets "$WORK/targets.json" $WRK -cpu "" -dir "$WORK" -out "$RAW/wrk.json"
scenario sse sse -targets "$WORK/targets.json" $SSE -out "$RAW/sse.json"
scenario rss rss -targets "$WORK/targets.json" -out "$RAW/rss.json"
scenario failover failover -targets "$WORK/failover.json" $FO -cpu "" -dir "$WORK" -out "$RAW/failover.json"
scenario streams streams -targets "$WORK/targets.json" -n "$STREAMS_N" -hold "$STREAMS_HOLD" -ramp-timeout 30s -out "$RAW/streams.json"
loadavg end

# --- report ----------------------------------------------------------------------------------------
say "writing the report"
"$WORK/bin/report" -raw "$RAW" -out "$RES" | tee -a "$LOG"
say "done: $RES/REPORT.md"
