#!/usr/bin/env bash
# Continuity under gray failures (issue 12): for each fault a real regional incident brings (a primary that cuts
# every stream, stalls mid-stream, black-holes streaming and non-streaming requests, sends its first byte after
# 8 s, flaps for 60 s, ends streams without [DONE]; prompts longer than the model's context with a fallback
# configured; every region throttled for a second), what applications behind each peer see while it lasts and how
# long the peer takes to send traffic back to the primary once it heals. Lifeline runs on its DEFAULT policy (only
# its regions, its client key and the fallback name are configured); nginx and Portkey are configured to fail
# over, as their documentation says, with their other settings at their defaults.
#
#   bench/continuity.sh            full run, about 15 minutes; writes bench/results/CONTINUITY.md
#   bench/continuity.sh --quick    smoke run, about 6 minutes (short faults; do not quote its figures)
#   FAULTS="cut_stream blackhole" bench/continuity.sh   only some faults (names in the report)
#   CONTINUITY_OUT=/tmp/c.md bench/continuity.sh        the report elsewhere
#
# Every peer gets its own two simulated regions (`lifeline sim --tls`, a primary and a secondary), so the peers
# run at the same time; faults go through each simulator's control API (POST /regions/{name}/fault). The
# scenario itself is bench/continuity (Go), run as `loadgen continuity`. bench/run.sh calls this script when it
# exists. Every process it starts is stopped on exit. Loopback only.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
WORK=$BENCH/.work/continuity
RES=$BENCH/results
QUICK=0
INSTALL=1
NICE=${NICE:--15}
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	--no-install) INSTALL=0 ;;
	-h | --help)
		sed -n '2,18p' "$0"
		exit 0
		;;
	*)
		echo "continuity.sh: unknown flag $a (try --help)" >&2
		exit 2
		;;
	esac
done

# Ports on 127.0.0.1 from CONTINUITY_PORT_BASE (default BENCH_PORT_BASE+300, i.e. 19300), clear of run.sh's:
# per peer a simulator (primary +0, secondary +1, control API +2) at +0 (lifeline), +10 (nginx), +20 (portkey);
# the peers at +30 (lifeline; its admin +31), +32 (nginx), +33 (portkey).
CB=${CONTINUITY_PORT_BASE:-$((${BENCH_PORT_BASE:-19000} + 300))}
declare -A SIMB=([lifeline]=$CB [nginx]=$((CB + 10)) [portkey]=$((CB + 20)))
P_LIFELINE=$((CB + 30)) P_ADMIN=$((CB + 31)) P_NGINX=$((CB + 32)) P_PORTKEY=$((CB + 33))
SIMKEY=continuity-sim-key

mkdir -p "$WORK/pids" "$WORK/nginx-tmp" "$RES/raw"
rm -f "$WORK"/pids/*.pid
LOG=$WORK/continuity.log
: >"$LOG"
say() { printf '%s  %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }

cleanup() {
	local f
	for f in "$WORK"/pids/*.pid; do
		[[ -e $f ]] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
	for _ in 1 2 3 4 5 6 7 8 9 10; do # Lifeline drains on SIGTERM
		local alive=0
		for f in "$WORK"/pids/*.pid; do
			[[ -e $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
		done
		((alive)) || break
		sleep 0.3
	done
	for f in "$WORK"/pids/*.pid; do
		[[ -e $f ]] || continue
		kill -9 "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

start() { # start NAME CMD...: logs in $WORK/NAME.log; $! is the process itself (nice execs it)
	local name=$1
	shift
	nice -n "$NICE" "$@" >"$WORK/$name.log" 2>&1 &
	echo $! >"$WORK/pids/$name.pid"
	disown $! # stopped by cleanup; no "Killed" notices from the shell
}
wait_port() {
	local i
	for i in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}
jstr() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	printf '"%s"' "$s"
}

for port in $(seq "$CB" $((CB + 33))); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		say "port $port is in use (another run, or a left-over server): stop it first; ss -ltnp 'sport = :$port' names it"
		exit 1
	fi
done

declare -A SKIP=()
command -v nginx >/dev/null || export PATH=$PATH:/usr/sbin
if ((INSTALL)); then
	if ! command -v nginx >/dev/null; then
		say "apt-get install nginx"
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >>"$LOG" 2>&1 || say "apt-get install nginx failed"
	fi
	PK=$BENCH/.work/portkey
	if [[ ! -f $PK/node_modules/@portkey-ai/gateway/build/start-server.js ]] && command -v npm >/dev/null; then
		say "npm install @portkey-ai/gateway"
		mkdir -p "$PK"
		[[ -f $PK/package.json ]] || echo '{"name":"bench-peers","private":true}' >"$PK/package.json"
		(cd "$PK" && npm install --no-audit --no-fund @portkey-ai/gateway) >>"$LOG" 2>&1 || say "npm install failed"
	fi
fi
# Portkey on Node 20 needs run.sh's patch of @hono/node-server (Portkey-AI/gateway#1389): streams fail without it.
d=$BENCH/.work/portkey/node_modules/@hono/node-server/dist
if [[ -d $d ]]; then
	sed -i 's/body, headers || init?\.headers\];/body, headers || (init?.headers instanceof Headers ? new Headers(init.headers) : init?.headers)];/' "$d"/*.js "$d"/*.mjs
fi
PK_SERVER=$BENCH/.work/portkey/node_modules/@portkey-ai/gateway/build/start-server.js
command -v nginx >/dev/null || SKIP[nginx]="nginx is not installed"
command -v node >/dev/null && [[ -f $PK_SERVER ]] || SKIP[portkey]="the Portkey gateway is not installed (npm install failed, or no node)"

say "building lifeline and the load generator"
mkdir -p "$WORK/bin"
(cd "$ROOT" && go build -o "$WORK/bin/lifeline" ./cmd/lifeline && go build -o "$WORK/bin/loadgen" ./bench/cmd/loadgen) >>"$LOG" 2>&1 || {
	say "build failed (see $LOG)"
	exit 1
}

# --- the simulators: one per peer, HTTPS, the simulator's default time to first token (200 ms) and speed (50 tokens/s)
for peer in lifeline nginx portkey; do
	[[ -z ${SKIP[$peer]:-} ]] || continue
	b=${SIMB[$peer]}
	start "sim-$peer" "$WORK/bin/lifeline" sim --regions eastus,westus --port "$b" --control "127.0.0.1:$((b + 2))" \
		--tls --cert-out "$WORK/sim-$peer.pem" --api-key "$SIMKEY"
	wait_port $((b + 2)) || { say "the simulator for $peer did not start: $(tail -n 3 "$WORK/sim-$peer.log")"; exit 1; }
	for i in $(seq 1 50); do [[ -s $WORK/sim-$peer.pem ]] && break; sleep 0.1; done
done

# --- Lifeline: the default policy. Configured: listen, a client key, the two regions, the fallback name.
cat >"$WORK/lifeline.yaml" <<EOF
# Lifeline for the continuity benchmark: the DEFAULT policy (no policy: section at all).
listen: 127.0.0.1:$P_LIFELINE
clients:
  - name: bench
    key: bench-client-key
admin:
  listen: 127.0.0.1:$P_ADMIN
  key: bench-admin-key
logging:
  level: warn
regions:
  - name: eastus
    endpoint: https://127.0.0.1:${SIMB[lifeline]}
    api_key: $SIMKEY
    priority: 1
    deployments: {gpt-4o: gpt-4o, gpt-4o-128k: gpt-4o-128k}
  - name: westus
    endpoint: https://127.0.0.1:$((SIMB[lifeline] + 1))
    api_key: $SIMKEY
    priority: 2
    deployments: {gpt-4o: gpt-4o, gpt-4o-128k: gpt-4o-128k}
fallbacks:
  gpt-4o: [gpt-4o-128k]
EOF
start lifeline env SSL_CERT_FILE="$WORK/sim-lifeline.pem" "$WORK/bin/lifeline" serve --config "$WORK/lifeline.yaml"
wait_port $P_LIFELINE || SKIP[lifeline]="lifeline serve did not listen: $(tail -n 3 "$WORK/lifeline.log" | tr '\n' ' ')"

# --- nginx: a primary and a backup server, proxy_next_upstream on every failure it can see before the answer
# starts (errors, timeouts, 429, 5xx; non_idempotent because every call is a POST). Everything else is nginx's
# default: max_fails=1 fail_timeout=10s, proxy_connect_timeout and proxy_read_timeout 60s.
if [[ -z ${SKIP[nginx]:-} ]]; then
	cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    upstream regions {
        server 127.0.0.1:${SIMB[nginx]};
        server 127.0.0.1:$((SIMB[nginx] + 1)) backup;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass https://regions;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_next_upstream error timeout http_429 http_500 http_502 http_503 http_504 non_idempotent;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $WORK/sim-nginx.pem;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
	start nginx nginx -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
	wait_port $P_NGINX || SKIP[nginx]="nginx did not listen: $(tail -n 3 "$WORK/nginx-error.log" 2>/dev/null | tr '\n' ' ')"
fi

# --- Portkey: fallback mode over the two regions on the status codes a failing region gives, and a
# request_timeout (Portkey has none by default, so a black-holed region would hold requests forever). It bounds
# the time to the response headers (measured: a stalled stream and a late first event pass through it), so it
# also bounds a non-streamed generation: 30 s, Lifeline's default stream_first_byte.
PK_TIMEOUT=30000
if [[ -z ${SKIP[portkey]:-} ]]; then
	start portkey env NODE_EXTRA_CA_CERTS="$WORK/sim-portkey.pem" node "$PK_SERVER" --port=$P_PORTKEY --headless
	wait_port $P_PORTKEY || SKIP[portkey]="Portkey did not listen: $(tail -n 3 "$WORK/portkey.log" | tr '\n' ' ')"
fi
pk_target() { # pk_target PORT [MODEL]
	local o=""
	[[ -n ${2:-} ]] && o=",\"override_params\":{\"model\":\"$2\"}"
	printf '{"provider":"openai","api_key":"%s","custom_host":"https://127.0.0.1:%s/openai/v1"%s}' "$SIMKEY" "$1" "$o"
}
pb=${SIMB[portkey]}
PK_CFG=$(printf '{"strategy":{"mode":"fallback","on_status_codes":[408,429,500,502,503,504]},"request_timeout":%d,"targets":[%s,%s]}' \
	$PK_TIMEOUT "$(pk_target $pb)" "$(pk_target $((pb + 1)))")
# For context_length: also on 400, with a third target that names the longer-context model.
PK_CFG_CTX=$(printf '{"strategy":{"mode":"fallback","on_status_codes":[400,408,429,500,502,503,504]},"request_timeout":%d,"targets":[%s,%s,%s]}' \
	$PK_TIMEOUT "$(pk_target $pb)" "$(pk_target $((pb + 1)))" "$(pk_target $pb gpt-4o-128k)")

PK_NOTE="Portkey, throttle_all: when every target answers 429, Portkey passes the last region's 429 on with the region's Content-Length while it rewrites the body (\"openai error: ...\" and a provider field): the client gets a truncated JSON body and the rest arrives as stray bytes on the keep-alive connection (Go's client logs \"Unsolicited response received on idle HTTP channel\"; seen with curl too: content-length 331, the body longer). The client still retries after Retry-After."
# --- the plan -------------------------------------------------------------------------------------------
AZ="/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
if ((QUICK)); then
	TIMING='"baseline":"3s","fault":"6s","flap":"12s","flap_down":"2s","flap_up":"2s","recover":"20s","timeout":"20s","rate":5,"back":10'
else
	TIMING='"baseline":"5s","fault":"20s","flap":"60s","flap_down":"5s","flap_up":"5s","recover":"60s","timeout":"90s","rate":8,"back":20'
fi
faults_json() {
	local sep="" f
	printf '['
	for f in ${FAULTS:-}; do
		printf '%s"%s"' "$sep" "$f"
		sep=,
	done
	printf ']'
}
NGINX_CANNOT='{
 "cut_stream":"once the answer has started to reach the client nginx cannot try another server (proxy_next_upstream acts before the first byte); the client gets the broken stream",
 "cut_stream_deterministic":"as cut_stream",
 "stall_stream":"as cut_stream; proxy_read_timeout (60 s by default) ends the stalled stream",
 "stall_stream_deterministic":"as stall_stream",
 "slow_first_byte":"the headers come at once and nginx has no first-event timeout; a proxy_read_timeout under 8 s would also cut every slow generation",
 "context_length":"nginx cannot send the request under another model name (the name is in the JSON body and the Azure path), and a 400 is not a condition proxy_next_upstream retries",
 "throttle_all":"no region can serve; with http_429 in proxy_next_upstream (what fails a throttled region over) both servers count as failed (max_fails=1) and nginx answers 502, without a Retry-After, until fail_timeout (10 s) has passed"}'
PK_CANNOT='{
 "cut_stream":"fallback acts on the status code only; a stream that breaks after its 200 reaches the client broken",
 "cut_stream_deterministic":"as cut_stream",
 "stall_stream":"as cut_stream, and request_timeout bounds only the time to the headers: the stalled stream is held until the client gives up",
 "stall_stream_deterministic":"as stall_stream",
 "slow_first_byte":"request_timeout bounds the time to the headers, which come at once; nothing bounds the first event"}'
{
	printf '{%s,"notes":[%s],"tokens":20,"retries":2,"context_window":400,"slow_first_byte":"8s","throttle":"1s","faults":%s,"peers":[\n' "$TIMING" "$(jstr "$PK_NOTE")" "$(faults_json)"
	printf '{"name":"lifeline","url":"http://127.0.0.1:%s%s","headers":{"api-key":"bench-client-key"},' $P_LIFELINE "$AZ"
	printf '"control":"http://127.0.0.1:%s","primary":"eastus","secondary":"westus","region_header":"x-lifeline-region","primary_value":"eastus",' $((SIMB[lifeline] + 2))
	printf '"config":%s,"skip":%s},\n' "$(jstr "lifeline serve ($("$WORK/bin/lifeline" version 2>/dev/null | head -n 1)), the default policy: no policy section; configured are the two regions (priority 1 and 2), a client key and fallbacks: {gpt-4o: [gpt-4o-128k]} (bench/.work/continuity/lifeline.yaml)")" "$(jstr "${SKIP[lifeline]:-}")"
	printf '{"name":"nginx","url":"http://127.0.0.1:%s%s","headers":{"api-key":"%s"},' $P_NGINX "$AZ" "$SIMKEY"
	printf '"control":"http://127.0.0.1:%s","primary":"eastus","secondary":"westus","region_header":"x-ms-region","primary_value":"East US",' $((SIMB[nginx] + 2))
	printf '"cannot":%s,' "$NGINX_CANNOT"
	printf '"config":%s,"skip":%s},\n' "$(jstr "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), upstream with the primary and a backup server, proxy_next_upstream error timeout http_429 http_500 http_502 http_503 http_504 non_idempotent, proxy_buffering off; nginx's defaults otherwise (max_fails=1, fail_timeout=10s, proxy_read_timeout 60s)")" "$(jstr "${SKIP[nginx]:-}")"
	printf '{"name":"portkey","url":"http://127.0.0.1:%s/v1/chat/completions","headers":{"x-portkey-config":%s},' $P_PORTKEY "$(jstr "$PK_CFG")"
	printf '"fault_headers":{"context_length":{"x-portkey-config":%s}},' "$(jstr "$PK_CFG_CTX")"
	printf '"control":"http://127.0.0.1:%s","primary":"eastus","secondary":"westus","region_header":"x-ms-region","primary_value":"East US",' $((SIMB[portkey] + 2))
	printf '"cannot":%s,' "$PK_CANNOT"
	printf '"config":%s,"skip":%s}\n' "$(jstr "@portkey-ai/gateway $(grep -m1 '"version"' "$BENCH/.work/portkey/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null | tr -dc '0-9.') on node $(node --version 2>/dev/null), fallback mode over the two regions on 408/429/500/502/503/504, request_timeout ${PK_TIMEOUT} ms (Portkey has no default); for context_length also on 400, with a third target overriding the model to gpt-4o-128k")" "$(jstr "${SKIP[portkey]:-}")"
	printf ']}\n'
} >"$WORK/plan.json"

cmd="bench/continuity.sh"
((QUICK)) && cmd+=" --quick"
[[ -n ${FAULTS:-} ]] && cmd="FAULTS=\"$FAULTS\" $cmd"
out=$RES/CONTINUITY.md
((QUICK)) && out=$WORK/CONTINUITY-quick.md
out=${CONTINUITY_OUT:-$out} # e.g. to measure another build without touching the committed report
say "running the continuity scenario (load average $(cut -d' ' -f1-3 /proc/loadavg))"
args=(-plan "$WORK/plan.json" -out "$RES/raw/continuity.json" -md "$out" -command "$cmd"
	-commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' with uncommitted changes')")
((QUICK)) && args+=(-quick)
nice -n "$NICE" "$WORK/bin/loadgen" continuity "${args[@]}" 2>&1 | tee -a "$LOG" >&2
say "done: $out"
