#!/usr/bin/env bash
# Lifeline benchmarks: Lifeline side by side with direct, nginx, Caddy, the Portkey gateway and a plain
# Go reverse proxy, in the same run, on the same mock upstream, over loopback only, on three paths:
#   https  clients on plain HTTP, regions on HTTPS (the production path: a gateway behind an ingress)
#   tls    clients on TLS, regions on HTTPS
#   plain  clients and regions on plain HTTP (the second table)
#
#   bench/run.sh                 full run (about 40 minutes: 25, then the continuity scenario, bench/continuity.sh)
#   bench/run.sh --quick         smoke run (about 12 minutes; do not quote its numbers); CONTINUITY=0 leaves continuity out
#   PATHS="https" bench/run.sh   only some paths (the main path's scenarios are the longest)
#
# Installs its peers itself (apt: nginx wrk; go install: caddy k6; npm: @portkey-ai/gateway), builds
# the mock upstream, the Go floor, the load generator and lifeline, makes a CA and a certificate that
# every peer trusts, pins the load generator to one core and every server to the other, runs the
# scenarios round by round with direct interleaved, and writes bench/results/REPORT.md,
# bench/results/chart.svg and raw JSON under bench/results/raw/PATH/.
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
		sed -n '2,18p' "$0"
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
# The mock: plain regions base+0..4, HTTPS regions base+10..14 (a refused region is a closed port).
UP=$PB FAIL503=$((PB + 1)) BLACKHOLE=$((PB + 2)) REFUSED=$((PB + 3)) SECONDARY=$((PB + 4))
TUP=$((PB + 10)) TFAIL503=$((PB + 11)) TBLACKHOLE=$((PB + 12)) TREFUSED=$((PB + 13)) TSECONDARY=$((PB + 14))
# Peers, per path (plain base+100, https base+120, tls base+140): goproxy +1, nginx +2, caddy +3,
# lifeline +5, lifeline-h1 +6, their admin listeners +15 and +16. Portkey is one process (its upstream is
# in a request header) on base+104.
declare -A PATH_BASE=([plain]=$((PB + 100)) [https]=$((PB + 120)) [tls]=$((PB + 140)))
P_PORTKEY=$((PB + 104))
NGX_FO_HEALTHY=$((PB + 201)) NGX_FO_503=$((PB + 202)) NGX_FO_REFUSED=$((PB + 203)) NGX_FO_BLACKHOLE=$((PB + 204))
LL_FO_BASE=$((PB + 210)) # lifeline failover instances (HTTPS regions): base+211..214, admin base+221..224
FO_TIMEOUT=1s    # how long a peer waits for a black-holed primary's answer before failing over
PATHS=${PATHS:-https tls plain}

# WRK: closed loop; the CPU time of the peer's processes over each run is divided by the requests it answered.
if ((QUICK)); then
	MAXSECS=1500
	SEQ="-rounds 2 -n 500 -warmup 100"
	K6="-rounds 1 -rates 500,2000 -duration 3s"
	WRK="-rounds 2 -duration 3s" WRK2=$WRK
	SSE="-rounds 1 -n 8"
	FO="-rounds 1 -duration 3s -warmup 3s"
	STREAMS_N=2000 STREAMS_HOLD=2s STREAMS_RAMP=30s
else
	MAXSECS=4200
	SEQ="-rounds 5 -n 2000 -warmup 200"
	K6="-rounds 3 -rates 500,1500 -duration 3s"
	WRK="-rounds 9 -duration 3s" WRK2="-rounds 5 -duration 3s" # WRK2: the tls and plain paths
	SSE="-rounds 3 -n 30"
	FO="-rounds 4 -duration 3s -warmup 2s"
	STREAMS_N=10000 STREAMS_HOLD=4s STREAMS_RAMP=60s # 10,000 TLS handshakes to the region take a while on one busy core
fi

mkdir -p "$WORK/bin" "$WORK/pids" "$WORK/nginx-tmp" "$RAW"
rm -f "$WORK"/pids/*.pid
rm -rf "${RAW:?}"/*
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
# One CA and one certificate (127.0.0.1, localhost) for every TLS listener: the mock's HTTPS regions and the
# peers' client listeners. Go peers trust it through SSL_CERT_FILE, Node through NODE_EXTRA_CA_CERTS, nginx
# through proxy_ssl_trusted_certificate; the load generator through the targets file (wrk does not verify).
CERTS=$WORK/certs
"$WORK/bin/loadgen" certs -dir "$CERTS"
CA=$CERTS/ca.pem CERT=$CERTS/cert.pem KEY=$CERTS/key.pem
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
# A proxy with an HTTP/1.1 connection to the region per stream holds two sockets per open stream (client side,
# upstream side): the hard limit on open files (per process) caps how many concurrent streams it can hold here.
# Over HTTP/2 the region's side is a few connections (250 streams each), so 10,000 streams fit.
MAX_STREAMS=$(((NOFILE - 1000) / 2)) # and room for the peer's other sockets (nginx counts idle upstream ones)
if ((STREAMS_N > MAX_STREAMS)); then
	say "RLIMIT_NOFILE hard limit is $NOFILE: streams through an HTTP/1.1 region connection capped at $MAX_STREAMS"
fi
if ((STREAMS_N > NOFILE - 1000)); then
	STREAMS_N=$((NOFILE - 1000))
fi

fill() { # fill TEMPLATE OUT KEY=VALUE...
	local tmpl=$1 out=$2 expr=() kv
	shift 2
	for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${expr[@]}" "$tmpl" >"$out"
}

fill "$BENCH/peers/nginx.conf.tmpl" "$WORK/nginx.conf" WORK="$WORK" NOFILE="$NOFILE" UP=$UP TUP=$TUP \
	TSECONDARY=$TSECONDARY TFAIL503=$TFAIL503 TREFUSED=$TREFUSED TBLACKHOLE=$TBLACKHOLE \
	PORT=$((PATH_BASE[plain] + 2)) PORT_HTTPS=$((PATH_BASE[https] + 2)) PORT_TLS=$((PATH_BASE[tls] + 2)) \
	FO_HEALTHY=$NGX_FO_HEALTHY FO_503=$NGX_FO_503 FO_REFUSED=$NGX_FO_REFUSED FO_BLACKHOLE=$NGX_FO_BLACKHOLE \
	FO_TIMEOUT=$FO_TIMEOUT CA="$CA" CERT="$CERT" KEY="$KEY"
fill "$BENCH/peers/Caddyfile.tmpl" "$WORK/Caddyfile" UP=$UP TUP=$TUP CERT="$CERT" KEY="$KEY" \
	PORT=$((PATH_BASE[plain] + 3)) PORT_HTTPS=$((PATH_BASE[https] + 3)) PORT_TLS=$((PATH_BASE[tls] + 3))

lifeline_config() { # lifeline_config OUT PORT ADMIN PRIMARY_URL SECONDARY_URL|"" TIMEOUT PROTOCOL TLS(0|1)
	local sec="" tlsb=""
	if [[ -n $5 ]]; then sec=$(sed -e "s|@SECONDARY@|$5|" -e "s|@PROTOCOL@|$7|" "$BENCH/peers/lifeline-secondary.yaml.part"); fi
	if [[ $8 == 1 ]]; then tlsb=$(printf 'tls:\n  cert_file: %s\n  key_file: %s' "$CERT" "$KEY"); fi
	fill "$BENCH/peers/lifeline.yaml.tmpl" "$1.tmp" PORT="$2" ADMIN="$3" PRIMARY="$4" RESPONSE_TIMEOUT="$6" PROTOCOL="$7"
	awk -v sec="$sec" -v tlsb="$tlsb" '$0=="@SECONDARY_BLOCK@"{if(sec!="")print sec;next} $0=="@TLS_BLOCK@"{if(tlsb!="")print tlsb;next}{print}' "$1.tmp" >"$1"
	rm -f "$1.tmp"
}
# Per path: lifeline (protocol auto: HTTP/2 to an HTTPS region, HTTP/1.1 to a plain one) and,
# with HTTPS regions, lifeline-h1 (protocol http1: HTTP/1.1 over TLS).
declare -A LL_VARIANTS=([plain]="lifeline" [https]="lifeline lifeline-h1" [tls]="lifeline lifeline-h1")
for path in $PATHS; do
	b=${PATH_BASE[$path]}
	region=http://127.0.0.1:$UP
	[[ $path == plain ]] || region=https://127.0.0.1:$TUP
	tlsc=0
	[[ $path == tls ]] && tlsc=1
	lifeline_config "$WORK/lifeline-$path.yaml" $((b + 5)) $((b + 15)) "$region" "" 30s auto $tlsc
	[[ $path == plain ]] || lifeline_config "$WORK/lifeline-h1-$path.yaml" $((b + 6)) $((b + 16)) "$region" "" 30s http1 $tlsc
done
FO_MODES=(healthy 503 refused blackhole)
declare -A FO_PRIMARY=([healthy]=$TUP [503]=$TFAIL503 [refused]=$TREFUSED [blackhole]=$TBLACKHOLE)
for i in "${!FO_MODES[@]}"; do
	m=${FO_MODES[$i]}
	lifeline_config "$WORK/lifeline-fo-$m.yaml" $((LL_FO_BASE + i + 1)) $((LL_FO_BASE + 11 + i)) \
		"https://127.0.0.1:${FO_PRIMARY[$m]}" "https://127.0.0.1:$TSECONDARY" $FO_TIMEOUT auto 0
done

# --- start the servers -----------------------------------------------------------------------------
ports=($UP $FAIL503 $BLACKHOLE $REFUSED $SECONDARY $TUP $TFAIL503 $TBLACKHOLE $TREFUSED $TSECONDARY $P_PORTKEY
	$NGX_FO_HEALTHY $NGX_FO_503 $NGX_FO_REFUSED $NGX_FO_BLACKHOLE $(seq $((LL_FO_BASE + 1)) $((LL_FO_BASE + 14))))
for path in plain https tls; do for o in 1 2 3 5 6 15 16; do ports+=($((PATH_BASE[$path] + o))); done; done
# Every port must be free: a server left over from another run would be measured in place of ours.
for port in "${ports[@]}"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		say "port $port is in use (another run still going, or a left-over server): stop it first; ss -ltnp 'sport = :$port' names it"
		exit 1
	fi
done
start mock "$WORK/bin/mockupstream" -cert "$CERT" -key "$KEY" \
	-listen 127.0.0.1:$UP,127.0.0.1:$SECONDARY,https://127.0.0.1:$TUP,https://127.0.0.1:$TSECONDARY \
	-fail503 127.0.0.1:$FAIL503,https://127.0.0.1:$TFAIL503 -blackhole 127.0.0.1:$BLACKHOLE,https://127.0.0.1:$TBLACKHOLE
for path in $PATHS; do
	b=${PATH_BASE[$path]}
	up=http://127.0.0.1:$UP
	[[ $path == plain ]] || up=https://127.0.0.1:$TUP
	args=(-listen 127.0.0.1:$((b + 1)) -upstream "$up")
	if [[ $path == tls ]]; then
		# The Go floor has no TLS listener of its own: a TLS client path through it would measure a wrapper.
		SKIP[tls/goproxy]="the plain Go proxy (cmd/goproxy) serves plain HTTP only"
	else
		start goproxy-$path env SSL_CERT_FILE="$CA" "$WORK/bin/goproxy" "${args[@]}"
	fi
done
[[ -n ${SKIP[nginx]:-} ]] || start nginx nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
[[ -n ${SKIP[caddy]:-} ]] || start caddy env SSL_CERT_FILE="$CA" caddy run --config "$WORK/Caddyfile" --adapter caddyfile
[[ -n ${SKIP[portkey]:-} ]] || start portkey env NODE_EXTRA_CA_CERTS="$CA" node \
	"$WORK/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" --port=$P_PORTKEY --headless
SKIP[tls/portkey]="Portkey's Node server (start-server.js) has no TLS listener; it is run behind a TLS terminator"
# start_lifeline NAME CONFIG PORT: `lifeline serve --config` if it serves, else bench/cmd/lifelinegw. Regions
# trust the benchmark's CA through SSL_CERT_FILE, as any Go program's roots.
start_lifeline() {
	if [[ $LIFELINE_RUNNER != lifelinegw && -x $WORK/lifeline ]]; then
		start "$1" env SSL_CERT_FILE="$CA" "$WORK/lifeline" serve --config "$2"
		if wait_port "$3"; then
			LIFELINE_RUNNER="lifeline serve"
			return 0
		fi
		kill "$(cat "$WORK/pids/$1.pid")" 2>/dev/null || true
		say "lifeline serve did not listen on $3 ($(tail -n 1 "$WORK/$1.log" 2>/dev/null)); using bench/cmd/lifelinegw"
	fi
	if [[ -x $WORK/bin/lifelinegw ]]; then
		LIFELINE_RUNNER=lifelinegw
		start "$1" env SSL_CERT_FILE="$CA" "$WORK/bin/lifelinegw" -config "$2"
		wait_port "$3"
		return
	fi
	return 1
}
if [[ -z ${SKIP[lifeline]:-} ]]; then
	for path in $PATHS; do
		start_lifeline lifeline-$path "$WORK/lifeline-$path.yaml" $((PATH_BASE[$path] + 5)) || true
		[[ $path == plain ]] || start_lifeline lifeline-h1-$path "$WORK/lifeline-h1-$path.yaml" $((PATH_BASE[$path] + 6)) || true
	done
	if [[ " $PATHS " == *" https "* ]]; then
		for i in "${!FO_MODES[@]}"; do
			start_lifeline "lifeline-fo-${FO_MODES[$i]}" "$WORK/lifeline-fo-${FO_MODES[$i]}.yaml" $((LL_FO_BASE + i + 1)) || true
		done
	fi
fi

# --- targets ---------------------------------------------------------------------------------------
PEERS=(direct nginx caddy portkey goproxy lifeline lifeline-h1)
declare -A PEER_OFF=([goproxy]=1 [nginx]=2 [caddy]=3 [lifeline]=5 [lifeline-h1]=6)
# Peers that hold an HTTP/1.1 connection to the region per open stream (two file descriptors per stream):
# their streams scenario is capped by the open-file limit. HTTP/2 multiplexes streams on a few connections.
declare -A H1_UPSTREAM=([nginx]=1 [portkey]=1 [lifeline-h1]=1)
jstr() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}
AZ_PATH="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}'
STREAM_BODY='{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":true,"user":"interval=5ms,chunks=20"}'
portkey_cfg() { # portkey_cfg PRIMARY_BASE_URL [SECONDARY_BASE_URL]
	local t1="{\"provider\":\"openai\",\"api_key\":\"bench-upstream-key\",\"custom_host\":\"$1/v1\"}"
	if [[ -z ${2:-} ]]; then
		printf '%s' "$t1"
	else
		printf '{"strategy":{"mode":"fallback","on_status_codes":[408,500,502,503,504]},"request_timeout":%d,"targets":[%s,{"provider":"openai","api_key":"bench-upstream-key","custom_host":"%s/v1"}]}' \
			"${FO_TIMEOUT%s}000" "$t1" "$2"
	fi
}
pid_of() { cat "$WORK/pids/$1.pid" 2>/dev/null || echo 0; }
target() { # target NAME MODE URL HEADERS_JSON PIDNAME SKIP MAX_STREAMS
	printf '{"name":%s,"mode":%s,"url":%s,"headers":%s,"pid":%s,"skip":%s,"max_streams":%d}' "$(jstr "$1")" "$(jstr "$2")" \
		"$(jstr "$3")" "$4" "$(pid_of "$5")" "$(jstr "$6")" "${7:-0}"
}
UPKEY='{"api-key":"bench-upstream-key"}'
LLKEY='{"api-key":"bench-client-key"}'
pk_headers() { printf '{"x-portkey-config":%s}' "$(jstr "$(portkey_cfg "$@")")"; }
region_url() { [[ $1 == plain ]] && echo "http://127.0.0.1:$UP" || echo "https://127.0.0.1:$TUP"; }
# peer_url PATH PEER: where the load generator sends a path's requests for PEER.
peer_url() {
	local path=$1 peer=$2 scheme=http
	[[ $path == tls ]] && scheme=https
	case $peer in
	direct) echo "$(region_url "$path")$AZ_PATH" ;;
	portkey) echo "http://127.0.0.1:$P_PORTKEY/v1/chat/completions" ;;
	*) echo "$scheme://127.0.0.1:$((PATH_BASE[$path] + PEER_OFF[$peer]))$AZ_PATH" ;;
	esac
}
peer_pid() { # the pid file of PATH's PEER
	case $2 in
	direct) echo mock ;;
	nginx | caddy | portkey) echo "$2" ;;
	*) echo "$2-$1" ;;
	esac
}
peer_headers() {
	case $2 in
	lifeline*) echo "$LLKEY" ;;
	portkey) pk_headers "$(region_url "$1")" ;;
	*) echo "$UPKEY" ;;
	esac
}
# Every target must listen and answer one request before anything is measured; one that cannot is reported,
# not faked.
for path in $PATHS; do
	for p in "${PEERS[@]}"; do
		[[ $path == plain && $p == lifeline-h1 ]] && continue
		k=$path/$p
		[[ -z ${SKIP[$k]:-} ]] || continue
		if [[ -n ${SKIP[${p%-h1}]:-} ]]; then
			SKIP[$k]=${SKIP[${p%-h1}]}
			continue
		fi
		url=$(peer_url "$path" "$p")
		port=${url#*://127.0.0.1:}
		port=${port%%/*}
		if ! wait_port "$port"; then
			SKIP[$k]="$p did not start listening on 127.0.0.1:$port (log: $(tail -n 3 "$WORK/$(peer_pid "$path" "$p").log" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
			say "$path: ${SKIP[$k]}"
			continue
		fi
		hdr=(-H "api-key: bench-upstream-key")
		[[ $p == lifeline* ]] && hdr=(-H "api-key: bench-client-key")
		[[ $p == portkey ]] && hdr=(-H "x-portkey-config: $(portkey_cfg "$(region_url "$path")")")
		code=$(curl -s --cacert "$CA" -o "$WORK/probe-$path-$p.out" -w '%{http_code}' -m 5 -H 'content-type: application/json' \
			"${hdr[@]}" -d "$BODY" "$url" || true)
		if [[ $code != 200 ]]; then
			SKIP[$k]="$p answered HTTP $code to a plain chat/completions request: $(head -c 200 "$WORK/probe-$path-$p.out" 2>/dev/null)"
			say "$path: ${SKIP[$k]}"
		fi
	done
done
for path in $PATHS; do
	{
		printf '{"body":%s,"stream_body":%s,"ca":%s,"upstream_pid":%s,"targets":[\n' "$(jstr "$BODY")" "$(jstr "$STREAM_BODY")" \
			"$(jstr "$CA")" "$(pid_of mock)"
		sep=""
		for p in "${PEERS[@]}"; do
			[[ $path == plain && $p == lifeline-h1 ]] && continue
			cap=0
			[[ $path == plain || -n ${H1_UPSTREAM[$p]:-} ]] && [[ $p != direct ]] && cap=$MAX_STREAMS
			printf '%s' "$sep"
			sep=$',\n'
			target "$p" "" "$(peer_url "$path" "$p")" "$(peer_headers "$path" "$p")" "$(peer_pid "$path" "$p")" "${SKIP[$path/$p]:-}" $cap
		done
		printf '\n]}\n'
	} >"$WORK/targets-$path.json"
done
{
	printf '{"body":%s,"stream_body":%s,"ca":%s,"upstream_pid":%s,"targets":[\n' "$(jstr "$BODY")" "$(jstr "$STREAM_BODY")" \
		"$(jstr "$CA")" "$(pid_of mock)"
	declare -A NGX_FO=([healthy]=$NGX_FO_HEALTHY [503]=$NGX_FO_503 [refused]=$NGX_FO_REFUSED [blackhole]=$NGX_FO_BLACKHOLE)
	sep=""
	# Grouped by peer: a peer's healthy and failing runs follow each other, so they share the machine's mood.
	for m in "${FO_MODES[@]}"; do
		printf '%s' "$sep"
		sep=$',\n'
		target nginx "$m" "http://127.0.0.1:${NGX_FO[$m]}$AZ_PATH" "$UPKEY" nginx "${SKIP[nginx]:-}"
	done
	for m in "${FO_MODES[@]}"; do
		printf ',\n'
		target portkey "$m" "http://127.0.0.1:$P_PORTKEY/v1/chat/completions" \
			"$(pk_headers "https://127.0.0.1:${FO_PRIMARY[$m]}" "https://127.0.0.1:$TSECONDARY")" portkey "${SKIP[portkey]:-}"
	done
	for i in "${!FO_MODES[@]}"; do
		m=${FO_MODES[$i]}
		printf ',\n'
		target lifeline "$m" "http://127.0.0.1:$((LL_FO_BASE + i + 1))$AZ_PATH" "$LLKEY" "lifeline-fo-$m" "${SKIP[lifeline]:-}"
	done
	printf '\n]}\n'
} >"$WORK/failover.json"

# --- record the conditions -------------------------------------------------------------------------
ver() { "$@" 2>&1 | head -n 1 | tr -d '"\\' || true; }
{
	printf '{\n'
	printf '"date":%s,\n' "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
	printf '"quick":%s,\n' "$( ((QUICK)) && echo true || echo false)"
	printf '"paths":%s,\n' "$(jstr "$PATHS")"
	printf '"commit":%s,\n' "$(jstr "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)")"
	printf '"kernel":%s,\n' "$(jstr "$(uname -sr)")"
	printf '"cpus":%s,\n' "$(jstr "$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))")"
	printf '"load_cpu":%s,"server_cpu":%s,"nice":%s,\n' "$(jstr "$LOAD_CPU")" "$(jstr "$SERVER_CPU")" "$(jstr "$NICE")"
	printf '"gomaxprocs_servers":%s,\n' "$(jstr "$(taskset -c "$SERVER_CPU" "$WORK/bin/loadgen" gomaxprocs) (GOMAXPROCS unset; Go reads the CPU affinity mask)")"
	printf '"nofile":%s,"streams":%s,"max_streams_h1":%s,\n' "$(jstr "$NOFILE")" "$(jstr "$STREAMS_N")" "$(jstr "$MAX_STREAMS")"
	printf '"load_average_start":%s,\n' "$(jstr "$(cut -d' ' -f1-3 /proc/loadavg)")"
	printf '"versions":{\n'
	printf '"go":%s,\n' "$(jstr "$(go version)")"
	printf '"nginx":%s,\n' "$(jstr "$(ver nginx -v)")"
	printf '"openssl":%s,\n' "$(jstr "$(ver openssl version)")"
	printf '"caddy":%s,\n' "$(jstr "$(go version -m "$(command -v caddy)" 2>/dev/null | awk '$1=="mod"{print $2" "$3; exit}')")"
	printf '"portkey":%s,\n' "$(jstr "$(grep -m1 '"version"' "$WORK/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null | tr -dc '0-9.') (@hono/node-server $(grep -m1 '"version"' "$WORK/portkey/node_modules/@hono/node-server/package.json" 2>/dev/null | tr -dc '0-9.'), patched), node $(node --version 2>/dev/null)")"
	printf '"wrk":%s,\n' "$(jstr "$(wrk -v 2>&1 | head -n 1 | cut -c1-60)")"
	printf '"k6":%s,\n' "$(jstr "$(ver k6 version)")"
	printf '"lifeline":%s\n' "$(jstr "$([[ -x $WORK/lifeline ]] && ver "$WORK/lifeline" version || echo "cmd/lifeline not built"); run as: ${LIFELINE_RUNNER:-not run} (commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet -- failover gateway config internal 2>/dev/null || echo ", with uncommitted changes in failover/gateway/config/internal"))")"
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
# The main path gets every scenario; the TLS-client path the per-request ones; the plain path keeps the
# figures of the earlier runs (second table) but not the failover and streams runs (STREAMS_PATHS to add them).
STREAMS_PATHS=${STREAMS_PATHS:-https}
for path in $PATHS; do
	T=$WORK/targets-$path.json
	R=$RAW/$path
	mkdir -p "$R"
	scenario "$path seq" seq -targets "$T" $SEQ -out "$R/seq.json"
	if [[ $path == https ]]; then
		if ((HAVE_K6)); then
			scenario "$path k6" k6 -targets "$T" $K6 -cpu "" -dir "$WORK" -out "$R/k6.json"
		else
			say "k6 is not installed: constant-rate scenario skipped"
		fi
	fi
	w=$WRK
	[[ $path == https ]] || w=$WRK2
	scenario "$path wrk" wrk -targets "$T" $w -cpu "" -dir "$WORK" -out "$R/wrk.json"
	scenario "$path sse" sse -targets "$T" $SSE -out "$R/sse.json"
	scenario "$path rss" rss -targets "$T" -out "$R/rss.json"
done
# Then the failover runs and the many open streams, which leave their mark on the peers' memory.
if [[ " $PATHS " == *" https "* ]]; then
	scenario "https failover" failover -targets "$WORK/failover.json" $FO -cpu "" -dir "$WORK" -out "$RAW/https/failover.json"
fi
for path in $PATHS; do
	if [[ " $STREAMS_PATHS " == *" $path "* ]]; then
		scenario "$path streams" streams -targets "$WORK/targets-$path.json" -n "$STREAMS_N" -hold "$STREAMS_HOLD" \
			-ramp-timeout "$STREAMS_RAMP" -out "$RAW/$path/streams.json"
	fi
done
# Other benchmarks that live in bench/ (the shared-state staleness benchmark of issue 14): run when present;
# each writes its own results file, which REPORT.md links.
if [[ -x $BENCH/staleness.sh ]] && ((!QUICK)); then
	say "scenario staleness (bench/staleness.sh)"
	loadavg staleness
	"$BENCH/staleness.sh" >>"$LOG" 2>&1 || say "bench/staleness.sh failed (see $LOG)"
fi
# The continuity scenario (issue 12): gray faults on simulated regions, Lifeline on its default policy beside nginx
# and Portkey configured to fail over; its own ports and processes; writes results/CONTINUITY.md (a quick run
# writes .work/continuity/CONTINUITY-quick.md instead). A failure does not stop the run.
if [[ -x $BENCH/continuity.sh && ${CONTINUITY:-1} != 0 ]]; then
	say "scenario continuity (bench/continuity.sh)"
	loadavg continuity
	c=(--no-install)
	((QUICK)) && c+=(--quick)
	"$BENCH/continuity.sh" "${c[@]}" >>"$LOG" 2>&1 || say "bench/continuity.sh failed (see $LOG and bench/.work/continuity/continuity.log)"
fi
loadavg end

# --- report ----------------------------------------------------------------------------------------
say "writing the report"
"$WORK/bin/report" -raw "$RAW" -out "$RES" | tee -a "$LOG"
say "done: $RES/REPORT.md"
