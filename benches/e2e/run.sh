#!/usr/bin/env bash
# End-to-end benchmark of mcpgate, side by side in one run:
#   direct to the upstream | nginx (plain reverse proxy) | a bare Pingora proxy (the floor of any
#   Pingora-based gateway) | mcpgate, no policies | mcpgate, full chain
#
#   benches/e2e/run.sh [--quick] [--out FILE] [--no-build] [--threads N] [--runtime MODEL] [--keep]
#                      [--streams N,...]
#
#   --quick      short run (about 3 minutes after the build): 2 rounds of 3 s, SSE with 1k streams only
#   --out FILE   also write the report there (default: benches/e2e/last-run.txt)
#   --no-build   use the binaries already in target/release
#   --threads N  mcpgate's server.threads and nginx's worker_processes (default: nproc)
#   --runtime M  mcpgate's server.runtime, per_core (default) or work_stealing; the pingora-bare row
#                is built the same way, and with per_core a pingora-bare-ws row (the bare proxy
#                with Pingora's default work-stealing runtime) is measured too
#   --keep       keep the temporary directory (configs, logs) after the run
#   --streams N[,N...]  SSE stream counts (default: 1000 with --quick, 1000,10000 otherwise)
#   --report-only DIR   print the report again from a directory kept with --keep
#
# What it does: installs what is missing (Debian wrk, nginx-light, time, iproute2, curl, openssl),
# builds (release) mcpgate and four helper programs in benches/e2e/ (e2e-upstream: a fast
# MCP-shaped upstream; e2e-bare: a ProxyHttp with no gateway code on the same Pingora; e2e-load: a
# fixed-rate client; sse_client: N concurrent GET streams), starts the upstream, nginx, the bare
# Pingora proxy and two mcpgate instances on free loopback ports, then measures, interleaved
# in rounds with the same load generator and request:
#   1. throughput and latency of 1 KB JSON-RPC POSTs (wrk), answered in JSON and as SSE;
#   2. latency at a fixed 1,000 requests/s (e2e-load), as added latency over direct;
#   3. open SSE streams (1k, and 10k without --quick): proxy memory per stream, relay latency
#      (upstream send to client receive), proxy CPU with events flowing and with idle streams
#      (a proxy holds 2 descriptors per stream: below a hard open-file limit of ~20.2k, the
#      10k count is capped to what fits, and the report says so);
#   4. idle memory of the proxies.
# The report (Markdown) goes to stdout and to the --out file; progress goes to stderr. Every
# process started here is stopped on exit. Runs as root or as a user who can run nginx from a
# private prefix (installing packages needs root).
set -Eeuo pipefail
shopt -s extglob
ORIG_ARGS="$*"

QUICK=0
OUT=""
BUILD=1
KEEP=0
THREADS=""
RUNTIME=per_core
REPORT_ONLY=""
STREAMS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --out) OUT="$2"; shift ;;
        --out=*) OUT="${1#--out=}" ;;
        --no-build) BUILD=0 ;;
        --threads) THREADS="$2"; shift ;;
        --threads=*) THREADS="${1#--threads=}" ;;
        --runtime) RUNTIME="$2"; shift ;;
        --runtime=*) RUNTIME="${1#--runtime=}" ;;
        --keep) KEEP=1 ;;
        --report-only) REPORT_ONLY="$2"; shift ;;
        --streams) STREAMS="$2"; shift ;;
        --streams=*) STREAMS="${1#--streams=}" ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/benches/e2e/last-run.txt}"
THREADS="${THREADS:-$(nproc)}"
START_TS=$(date +%s)
LOADAVG_START=$(cut -d" " -f1-3 /proc/loadavg)

# ---- settings -------------------------------------------------------------------------------
if [ "$QUICK" = 1 ]; then
    MODE="--quick"
    ROUNDS=2; WARM=1; DUR=3            # wrk: rounds, warm-up and measured seconds per target
    FR_ROUNDS=1; FR_DUR=4              # fixed rate: rounds, measured seconds
    SSE_COUNTS=(1000)
    SSE_ACTIVE=2; SSE_IDLE=2           # seconds of CPU sampling with events flowing / paused
    BUDGET=300                         # watchdog: abort the run after this many seconds
else
    MODE="full"
    ROUNDS=3; WARM=2; DUR=5
    FR_ROUNDS=2; FR_DUR=8
    SSE_COUNTS=(1000 10000)
    SSE_ACTIVE=4; SSE_IDLE=3
    BUDGET=1080
fi
WRK_THREADS=1
WRK_CONNS=32
FR_RATE=1000
FR_CONNS=16
SSE_RATE=2000                          # new streams a second
SSE_INTERVAL=1s                        # upstream event interval on GET streams
case "$RUNTIME" in
    per_core) TARGETS=(direct nginx pingora-bare pingora-bare-ws mcpgate-plain mcpgate-full) ;;
    work_stealing) TARGETS=(direct nginx pingora-bare mcpgate-plain mcpgate-full) ;;
    *) echo "--runtime: per_core or work_stealing, not $RUNTIME" >&2; exit 2 ;;
esac
PROXIES=("${TARGETS[@]:1}")            # the targets that are processes of their own
if [ -n "$STREAMS" ]; then
    IFS=, read -r -a SSE_COUNTS <<<"$STREAMS"
    for n in "${SSE_COUNTS[@]}"; do
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -gt 0 ] || { echo "--streams: not a count: $n" >&2; exit 2; }
        BUDGET=$(( BUDGET + 40 + n / 100 ))
    done
fi

log() { printf '[%4ss] %s\n' "$(( $(date +%s) - START_TS ))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---- processes ----------------------------------------------------------------------------------
declare -A PID=()         # name -> pid
declare -A STOPSIG=()     # name -> signal that stops it quickly
WATCHDOG=""

stop() { # name: stop one process we started, and wait for it
    local name="$1" pid="${PID[$1]:-}"
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -"${STOPSIG[$name]:-TERM}" "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "PID[$name]"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    if [ -n "$WATCHDOG" ]; then kill "$WATCHDOG" 2>/dev/null || true; wait "$WATCHDOG" 2>/dev/null || true; fi
    if [ "$KEEP" = 1 ] || [ $rc -ne 0 ]; then
        log "temporary directory kept: $T"
    else
        rm -rf "$T"
    fi
    exit $rc
}

record_cmd() { # the command line, quoted for a shell, with the run directory shown as $T
    local a line=""
    for a in "$@"; do
        a="${a//$T/\$T}"
        if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+="$a "; elif [[ "$a" == *\$* ]]; then line+="\"$a\" "; else line+="'$a' "; fi
    done
    line="${line% }"
    grep -qxF -- "$line" "$CMDS" || printf '%s\n' "$line" >>"$CMDS"
}

USED_PORTS=" "
free_port() { # VAR: a free loopback port below the ephemeral range, never the same twice
    local p
    while :; do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
            USED_PORTS+="$p "
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

proc_pids() { # name: the pid and, for nginx, its workers
    local pid="${PID[$1]:-}"
    [ -n "$pid" ] || return 0
    echo "$pid"
    [ "$1" = nginx ] && pgrep -P "$pid" 2>/dev/null || true
}
cpu_ticks() { # pids...: utime+stime (clock ticks) summed
    local sum=0 p v
    for p in "$@"; do
        v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null) || v=0
        sum=$(( sum + ${v:-0} ))
    done
    echo "$sum"
}
machine_busy() { awk '/^cpu /{ print $2+$3+$4+$7+$8+$9 }' /proc/stat; }
mem_kb() { # pids...: "RSS PSS" in KiB, summed
    local rss=0 pss=0 p r s
    for p in "$@"; do
        r=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null) || r=0
        s=$(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || s=0
        rss=$(( rss + ${r:-0} )); pss=$(( pss + ${s:-0} ))
    done
    echo "$rss $pss"
}
fds() { local n=0 p; for p in "$@"; do n=$(( n + $(ls "/proc/$p/fd" 2>/dev/null | wc -l) )); done; echo $n; }
HZ=$(getconf CLK_TCK)
up_stats() { # "connections=N requests=N streams=N" from the upstream (its own request not counted)
    curl -s -m 2 "http://$UP_ADDR/stats" | sed 's/[{}"]//g; s/,/ /g; s/:/=/g'
}
up_delta() { # before after key: growth, less the /stats request itself
    local a b
    a=$(val "$1" "$3"); b=$(val "$2" "$3")
    echo $(( ${b:-0} - ${a:-0} - 1 ))
}

# ---- upstream -------------------------------------------------------------------------------------
start_upstream() {
    local cmd=("$UPSTREAM" --listen 127.0.0.1:0 --threads 1 --interval "$SSE_INTERVAL")
    record_cmd "${cmd[@]}"
    "${cmd[@]}" >"$T/upstream.out" 2>"$T/upstream.log" &
    PID[upstream]=$!; STOPSIG[upstream]=TERM
    local i
    for i in $(seq 1 100); do
        grep -q '^LISTEN ' "$T/upstream.out" 2>/dev/null && break
        sleep 0.05
    done
    UP_ADDR=$(awk '/^LISTEN /{print $2}' "$T/upstream.out")
    [ -n "$UP_ADDR" ] || die "upstream did not start: $(cat "$T/upstream.log")"
    UP_PORT=${UP_ADDR##*:}
}

# ---- nginx ---------------------------------------------------------------------------------------
write_nginx_conf() {
    mkdir -p "$T/nginx"
    local user_line=""
    [ "$(id -u)" = 0 ] && user_line="user root root;"
    cat >"$T/nginx/nginx.conf" <<EOF
# nginx as the equivalent plain reverse proxy: streaming both ways, upstream keep-alive.
$user_line
worker_processes $THREADS;
worker_rlimit_nofile $NOFILE;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events {
    worker_connections $NOFILE;
}
http {
    access_log off;
    client_body_temp_path $T/nginx/client_body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream mcp {
        server 127.0.0.1:$UP_PORT;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;
        location / {
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
            proxy_send_timeout 30s;
        }
    }
}
EOF
}

start_nginx() {
    local cmd=("$NGINX" -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf")
    record_cmd "${cmd[@]}"
    "${cmd[@]}" >"$T/nginx/stdout.log" 2>&1 &
    PID[nginx]=$!; STOPSIG[nginx]=TERM
}

# ---- bare Pingora ------------------------------------------------------------------------------------
# The same Pingora version, build profile, thread count and runtime model as mcpgate (--runtime);
# everything else is Pingora's default. pingora-bare-ws: the same with Pingora's default runtime
# (one service, work stealing).
start_bare() {
    local cmd=("$BARE" --listen "127.0.0.1:$BARE_PORT" --upstream "127.0.0.1:$UP_PORT" --threads "$THREADS")
    [ "$RUNTIME" = per_core ] && cmd+=(--per-core)
    record_cmd "${cmd[@]}"
    "${cmd[@]}" >"$T/pingora-bare.log" 2>&1 &
    PID[pingora-bare]=$!; STOPSIG[pingora-bare]=INT
}
start_bare_ws() {
    local cmd=("$BARE" --listen "127.0.0.1:$BARE_WS_PORT" --upstream "127.0.0.1:$UP_PORT" --threads "$THREADS")
    record_cmd "${cmd[@]}"
    "${cmd[@]}" >"$T/pingora-bare-ws.log" 2>&1 &
    PID[pingora-bare-ws]=$!; STOPSIG[pingora-bare-ws]=INT
}

# ---- mcpgate ---------------------------------------------------------------------------------------
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
make_token() {
    JWT_SECRET=$(openssl rand -hex 32)
    local h p s
    h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
    p=$(printf '{"sub":"bench-client","iss":"mcpgate-bench","aud":"mcpgate-bench","exp":%d,"roles":["bench"]}' \
        $(( $(date +%s) + 86400 )) | b64url)
    s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$JWT_SECRET" -binary | b64url)
    TOKEN="$h.$p.$s"
}

write_mcpgate_conf() { # name port admin_port full(0/1)
    local name="$1" port="$2" admin="$3" full="$4" f="$T/$1.yaml"
    cat >"$f" <<EOF
# mcpgate, $name: generated by benches/e2e/run.sh
listen: 127.0.0.1:$port
admin: 127.0.0.1:$admin
server:
  threads: $THREADS
  runtime: $RUNTIME
  pid_file: $T/$name.pid
  upgrade_sock: $T/$name.upgrade.sock
  grace_period: 1s
  graceful_shutdown_timeout: 1s
access_log:
  enabled: false
EOF
    if [ "$full" = 1 ]; then
        cat >>"$f" <<EOF
policies:
  auth:
    jwt:
      secret: "$JWT_SECRET"
      algorithms: [HS256]
      issuer: mcpgate-bench
      audience: mcpgate-bench
  mcp:
    inspect: true
  tools:
    allow: ["echo", "add", "search_*"]
    deny: ["drop_database"]
  rules:
    - name: no-destructive-tools
      when: 'mcp.tool.startsWith("delete_") && !("admin" in identity.roles)'
      message: "destructive tools need the admin role"
  rate_limits:
    - name: per-subject
      requests: 100000000
      period: 1s
      key: subject
EOF
    fi
    cat >>"$f" <<EOF
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:$UP_PORT]
  - path: /mcp-sse
    backend:
      hosts: [http://127.0.0.1:$UP_PORT]
EOF
    record_cmd "$MCPGATE" -c "$f" -t
    "$MCPGATE" -c "$f" -t >"$T/$name.check.log" 2>&1 || die "invalid config $f: $(cat "$T/$name.check.log")"
}

start_mcpgate() { # name
    local cmd=("$MCPGATE" -c "$T/$1.yaml")
    record_cmd "${cmd[@]}"
    MCPGATE_LOG=warn "${cmd[@]}" >"$T/$1.log" 2>&1 &
    PID[$1]=$!; STOPSIG[$1]=INT
}

# ---- requests -------------------------------------------------------------------------------------
make_body() { # a ~1 KB tools/call
    local pad
    pad=$(head -c 2000 /dev/zero | tr '\0' 'x')
    local pre='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
    local post='"},"_meta":{"progressToken":"bench"}}}'
    local n=$(( 1024 - ${#pre} - ${#post} ))
    printf '%s%s%s' "$pre" "${pad:0:$n}" "$post" >"$T/body.json"
    printf '%s' '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_database","arguments":{}}}' >"$T/denied.json"
}

target_port() {
    case "$1" in
        direct) echo "$UP_PORT" ;;
        nginx) echo "$NGINX_PORT" ;;
        pingora-bare) echo "$BARE_PORT" ;;
        pingora-bare-ws) echo "$BARE_WS_PORT" ;;
        mcpgate-plain) echo "$PLAIN_PORT" ;;
        mcpgate-full) echo "$FULL_PORT" ;;
    esac
}
start_target() { # target (not direct)
    case "$1" in
        nginx) start_nginx ;;
        pingora-bare) start_bare ;;
        pingora-bare-ws) start_bare_ws ;;
        *) start_mcpgate "$1" ;;
    esac
}
target_proc() { case "$1" in direct) echo upstream ;; nginx) echo nginx ;; *) echo "$1" ;; esac; }

HDR_CT="Content-Type: application/json"
HDR_ACCEPT="Accept: application/json, text/event-stream"
HDR_PROTO="MCP-Protocol-Version: 2025-06-18"

write_wrk_lua() { # path(/mcp or /mcp-sse) file
    cat >"$2" <<EOF
-- generated by benches/e2e/run.sh: the same 1 KB JSON-RPC POST to every target
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.body = [[$(cat "$T/body.json")]]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
}

http_check() { # expected_status url [curl args...]: one request, status compared
    local want="$1" url="$2"; shift 2
    local got
    got=$(curl -s -o "$T/check.body" -w '%{http_code}' -m 5 "$@" "$url" || true)
    [ "$got" = "$want" ] || { log "check: $url answered $got, expected $want: $(head -c 300 "$T/check.body" 2>/dev/null)"; return 1; }
}
post_check() { # expected target [extra curl args]
    local want="$1" t="$2"; shift 2
    http_check "$want" "http://127.0.0.1:$(target_port "$t")/mcp" -X POST \
        -H "$HDR_CT" -H "$HDR_ACCEPT" -H "$HDR_PROTO" "$@"
}
wait_ready() { # target: until a POST answers 200 (5 s)
    local t="$1" i
    for i in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -m 1 -X POST -H "$HDR_CT" -H "$HDR_ACCEPT" \
            -H "Authorization: Bearer $TOKEN" --data-binary "@$T/body.json" \
            "http://127.0.0.1:$(target_port "$t")/mcp" 2>/dev/null)" = 200 ] && return 0
        sleep 0.05
    done
    die "$t did not become ready; log: $(tail -5 "$T/$(target_proc "$t").log" 2>/dev/null; tail -5 "$T/nginx/error.log" 2>/dev/null)"
}

# ---- measurements ------------------------------------------------------------------------------------
# wrk_run kind target round path seconds record(0/1)
wrk_run() {
    local kind="$1" t="$2" round="$3" path="$4" secs="$5" rec="$6"
    local url="http://127.0.0.1:$(target_port "$t")$path"
    local lua="$T/wrk${path//\//-}.lua"
    [ -f "$lua" ] || write_wrk_lua "$path" "$lua"
    local cmd=(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${secs}s" --timeout 5s -s "$lua" "$url")
    local pids; pids=$(proc_pids "$(target_proc "$t")")
    local up0 px0 m0 up1 px1 m1
    local st0 st1; st0=$(up_stats)
    up0=$(cpu_ticks "${PID[upstream]}"); px0=$(cpu_ticks $pids); m0=$(machine_busy)
    /usr/bin/time -f '%U %S %e' -o "$T/wrk.time" "${cmd[@]}" >"$T/wrk.out" 2>&1 || true
    up1=$(cpu_ticks "${PID[upstream]}"); px1=$(cpu_ticks $pids); m1=$(machine_busy)
    st1=$(up_stats)
    [ "$rec" = 1 ] || return 0
    record_cmd "${cmd[@]//127.0.0.1:+([0-9])/127.0.0.1:PORT}"
    local res; res=$(grep '^WRKRESULT' "$T/wrk.out" | sed 's/^WRKRESULT //') || true
    [ -n "$res" ] || { log "wrk failed: $(tail -3 "$T/wrk.out")"; res="requests=0 rps=0 p50_us=0 p99_us=0 p999_us=0 max_us=0 non2xx=0 errors=1"; }
    local wall wrk_cpu up_cpu px_cpu all_cpu other
    read -r u s wall <"$T/wrk.time" || { u=0; s=0; wall=$secs; }
    wrk_cpu=$(awk -v u="$u" -v s="$s" -v w="$wall" 'BEGIN{printf "%.0f", (u+s)/w*100}')
    up_cpu=$(awk -v a="$up0" -v b="$up1" -v w="$wall" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/w*100}')
    px_cpu=$(awk -v a="$px0" -v b="$px1" -v w="$wall" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/w*100}')
    all_cpu=$(awk -v a="$m0" -v b="$m1" -v w="$wall" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/w*100}')
    [ "$t" = direct ] && px_cpu=0
    other=$(( all_cpu - wrk_cpu - up_cpu - px_cpu )); [ $other -lt 0 ] && other=0
    local upc; upc=$(up_delta "$st0" "$st1" connections)
    echo "$kind $t $round $res cpu_load=$wrk_cpu cpu_up=$up_cpu cpu_proxy=$px_cpu cpu_other=$other up_conns=$upc up_reqs=$(up_delta "$st0" "$st1" requests)" >>"$RAW"
    log "  $kind r$round $t: $(echo "$res" | awk '{print $2, $3, $4, $7, $8}') cpu load/up/proxy/other=$wrk_cpu/$up_cpu/$px_cpu/$other% upstream conns=$upc"
}

fixed_run() { # target round
    local t="$1" round="$2"
    local pids; pids=$(proc_pids "$(target_proc "$t")")
    local cmd=("$LOADGEN" --addr "127.0.0.1:$(target_port "$t")" --path /mcp --body-file "$T/body.json"
        --header "$HDR_CT" --header "$HDR_ACCEPT" --header "$HDR_PROTO" --header "Authorization: Bearer $TOKEN"
        --rate "$FR_RATE" --connections "$FR_CONNS" --duration "$FR_DUR" --warmup 1)
    local px0 px1 st0 st1
    st0=$(up_stats); px0=$(cpu_ticks $pids)
    timeout $(( FR_DUR + 20 )) "${cmd[@]}" >"$T/load.out" 2>&1 || true
    px1=$(cpu_ticks $pids); st1=$(up_stats)
    local shown=("${cmd[@]}"); shown[2]="127.0.0.1:PORT"; shown[14]="Authorization: Bearer \$TOKEN"
    record_cmd "${shown[@]}"
    local res; res=$(grep '^RESULT' "$T/load.out" | sed 's/^RESULT //') || true
    [ -n "$res" ] || { log "e2e-load failed: $(tail -3 "$T/load.out")"; res="sent=0 ok=0 non2xx=0 errors=1 achieved_rps=0 p50_us=0 p99_us=0 p999_us=0"; }
    local px_cpu; px_cpu=$(awk -v a="$px0" -v b="$px1" -v w="$(( FR_DUR + 1 ))" -v hz="$HZ" 'BEGIN{printf "%.0f", (b-a)/hz/w*100}')
    [ "$t" = direct ] && px_cpu=0
    echo "fixed $t $round $res cpu_proxy=$px_cpu up_conns=$(up_delta "$st0" "$st1" connections)" >>"$RAW"
    log "  fixed r$round $t: $(echo "$res" | tr ' ' '\n' | grep -E '^(achieved_rps|p50_us|p99_us|p999_us|non2xx|errors)=' | tr '\n' ' ')"
}

# sse_run target streams: restarts the proxy first, so every measurement starts from a fresh process
sse_run() {
    local t="$1" n="$2" proc; proc=$(target_proc "$t")
    if [ "$t" != direct ]; then
        stop "$proc"
        start_target "$t"
        wait_ready "$t"
        sleep 1
    fi
    local pids; pids=$(proc_pids "$proc")
    local mem0; mem0=$(mem_kb $pids)
    local hold; hold=$(awk -v a="$SSE_ACTIVE" -v i="$SSE_IDLE" 'BEGIN{print a + i + 3.5}')
    local cmd=("$SSE_CLIENT" --addr "127.0.0.1:$(target_port "$t")" --path /mcp --streams "$n" --rate "$SSE_RATE"
        --hold "$hold" --open-timeout 30 --header "Authorization: Bearer $TOKEN")
    local shown=("${cmd[@]}"); shown[2]="127.0.0.1:PORT"; shown[6]="N"; shown[14]="Authorization: Bearer \$TOKEN"
    record_cmd "${shown[@]}"
    timeout $(( 60 + ${hold%.*} )) "${cmd[@]}" >"$T/sse.out" 2>"$T/sse.err" &
    local cpid=$!
    PID[sse_client]=$cpid; STOPSIG[sse_client]=TERM
    local i
    for i in $(seq 1 700); do
        grep -q '^READY' "$T/sse.out" 2>/dev/null && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    sleep 1
    pids=$(proc_pids "$proc")
    local mem1 nfd c0 c1 c2 c3 p0 p1
    mem1=$(mem_kb $pids); nfd=$(fds $pids)
    c0=$(cpu_ticks $pids); p0=$(date +%s.%N)
    sleep "$SSE_ACTIVE"
    c1=$(cpu_ticks $pids); p1=$(date +%s.%N)
    local active; active=$(awk -v a="$c0" -v b="$c1" -v t0="$p0" -v t1="$p1" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)/hz/(t1-t0)*100}')
    # pause the upstream's events: the streams stay open and idle
    kill -USR1 "${PID[upstream]}"
    local paused_at; paused_at=$(date +%s.%N)
    sleep 1.1
    c2=$(cpu_ticks $pids); p0=$(date +%s.%N)
    sleep "$SSE_IDLE"
    c3=$(cpu_ticks $pids); p1=$(date +%s.%N)
    kill -USR1 "${PID[upstream]}"
    local pause_s; pause_s=$(awk -v a="$paused_at" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
    local idle; idle=$(awk -v a="$c2" -v b="$c3" -v t0="$p0" -v t1="$p1" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)/hz/(t1-t0)*100}')
    wait "$cpid" || true
    unset "PID[sse_client]"
    sleep 0.5
    local mem2; mem2=$(mem_kb $pids)
    local res; res=$(grep '^RESULT' "$T/sse.out" | sed 's/^RESULT //') || true
    [ -n "$res" ] || { log "sse_client failed: $(tail -3 "$T/sse.err")"; res="streams=$n open_ok=0 open_fail=$n events=0 p50_us=0 p99_us=0 max_us=0 hold_s=0"; }
    [ -s "$T/sse.err" ] && log "  sse_client stderr: $(head -3 "$T/sse.err" | tr '\n' ' ')"
    [ "$t" = direct ] && { mem0="0 0"; mem1="0 0"; mem2="0 0"; active=0; idle=0; nfd=0; }
    echo "sse $t $n $res rss0=${mem0% *} pss0=${mem0#* } rss1=${mem1% *} pss1=${mem1#* } rss2=${mem2% *} fds=$nfd cpu_active=$active cpu_idle=$idle pause_s=$pause_s" >>"$RAW"
    log "  sse $t n=$n: $(echo "$res" | tr ' ' '\n' | grep -E '^(open_ok|open_fail|events|p50_us|p99_us|max_us)=' | tr '\n' ' ')rss ${mem0% *}->${mem1% *} KiB, cpu active/idle $active/$idle%"
}

# ---- helpers for the report ----------------------------------------------------------------------------
val() { # "line" key
    local k="$2"
    awk -v k="$k" '{ for (i = 1; i <= NF; i++) { n = index($i, "="); if (n && substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' <<<"$1"
}
med() { # kind target key: median over rounds
    awk -v kind="$1" -v t="$2" -v k="$3" '$1 == kind && $2 == t {
        for (i = 4; i <= NF; i++) { n = index($i, "="); if (n && substr($i, 1, n - 1) == k) print substr($i, n + 1) } }' "$RAW" |
        sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
sumk() { # kind target key: sum over rounds
    awk -v kind="$1" -v t="$2" -v k="$3" '$1 == kind && $2 == t {
        for (i = 4; i <= NF; i++) { n = index($i, "="); if (n && substr($i, 1, n - 1) == k) s += substr($i, n + 1) } } END { print s + 0 }' "$RAW"
}
ms() { awk -v x="$1" 'BEGIN { if (x == "nan") print "n/a"; else printf "%.3f", x / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.2fx", a / b }'; }
rep() { printf '%s\n' "$*" >>"$REPORT"; }

# =========================================================================================================
# Report
write_report() {
    CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
    MEM_TOTAL=$(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)
    GIT_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    GIT_DIRTY=$( (git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null || true) | wc -l)
    NGINX_V=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
    WRK_V=$(wrk -v 2>&1 | head -1 | awk '{print $2}' || true)

    rep "## End-to-end benchmark ($MODE run, $(date -u '+%Y-%m-%d %H:%M UTC'))"
    rep ""
    rep "- Machine: $(nproc) CPUs, $CPU_MODEL, $MEM_TOTAL RAM, kernel $(uname -r); load average at start $LOADAVG_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    rep "- Versions: mcpgate $GIT_REV$([ "$GIT_DIRTY" -gt 0 ] && echo " (+ uncommitted changes in src/)"), $(rustc -V), nginx $NGINX_V, wrk $WRK_V"
    rep "- Proxies: mcpgate server.threads $THREADS, nginx worker_processes $THREADS; upstream: e2e-upstream, 1 thread; open-file limit $NOFILE"
    rep "- Request: 1 KB JSON-RPC tools/call POST (same bytes and headers to every target, including the JWT); answer ~1 KB JSON, or one SSE event on /mcp-sse"
    rep "- mcpgate-plain: no policies, access log off. mcpgate-full: JWT (HS256), JSON-RPC inspection, tool allow-list, a CEL rule, a rate limit that never trips, metrics; access log off"
    rep "- nginx: proxy_http_version 1.1, proxy_buffering off, proxy_request_buffering off, upstream keepalive 256, access_log off"
    rep "- Runtime: mcpgate server.runtime $RUNTIME; pingora-bare: benches/e2e/bare.rs, a ProxyHttp that only names the upstream, on the same Pingora and build as mcpgate, $THREADS threads, the same runtime model ($RUNTIME), Pingora's defaults otherwise: the floor of a Pingora-based gateway$([ "$RUNTIME" = per_core ] && echo "; pingora-bare-ws: the same bare proxy with Pingora's default runtime (one service, work stealing)")"
    rep "- Run time: ${ELAPSED}s (without the build). Ratios are medians of rounds measured side by side, interleaved (order rotated each round)."
    rep ""

    for kind in json sse-answer; do
        if [ "$kind" = json ]; then
            rep "### Throughput: POST /mcp, JSON answer (wrk -t$WRK_THREADS -c$WRK_CONNS -d${DUR}s, median of $ROUNDS rounds)"
        else
            rep "### Throughput: POST /mcp-sse, SSE answer (wrk -t$WRK_THREADS -c$WRK_CONNS -d${DUR}s, median of $ROUNDS rounds)"
        fi
        rep ""
        rep "| target | req/s | vs direct | vs nginx | p50 ms | p99 ms | p99.9 ms | non-2xx / errors | CPU % wrk / upstream / proxy / other | upstream conns opened |"
        rep "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
        d=$(med "$kind" direct rps); ng=$(med "$kind" nginx rps)
        for t in "${TARGETS[@]}"; do
            x=$(med "$kind" "$t" rps)
            rep "| $t | $(printf '%.0f' "$x") | $(ratio "$x" "$d") | $(ratio "$x" "$ng") | $(ms "$(med "$kind" "$t" p50_us)") | $(ms "$(med "$kind" "$t" p99_us)") | $(ms "$(med "$kind" "$t" p999_us)") | $(sumk "$kind" "$t" non2xx) / $(sumk "$kind" "$t" errors) | $(med "$kind" "$t" cpu_load) / $(med "$kind" "$t" cpu_up) / $(med "$kind" "$t" cpu_proxy) / $(med "$kind" "$t" cpu_other) | $(med "$kind" "$t" up_conns) |"
        done
        rep ""
    done
    for kind in json sse-answer; do
        for t in "${TARGETS[@]}"; do
            if awk -v x="$(med "$kind" "$t" cpu_load)" 'BEGIN{exit !(x >= 90)}'; then
                rep "Note ($kind, $t): wrk used $(med "$kind" "$t" cpu_load)% of a core: one wrk thread and the single-threaded upstream ($(med "$kind" "$t" cpu_up)%) filled the 2 cores, so this figure is the client's ceiling, not $t's."
                rep ""
            fi
        done
    done
    rep "CPU: % of one core over the measured run (wrk from its rusage; upstream and proxy from /proc; other: the rest of the machine, i.e. noise such as builds, plus the idle proxies). A load generator near 100% would mean the client, not the target, set the pace. Upstream conns opened: new connections the upstream accepted during one measured run (median; $WRK_CONNS for direct; a proxy that reuses its upstream connections opens few)."
    rep ""

    rep "### Fixed rate: $FR_RATE req/s (e2e-load, $FR_CONNS connections, ${FR_DUR}s after 1s warm-up, median of $FR_ROUNDS round(s))"
    rep ""
    rep "| target | achieved req/s | p50 ms | p99 ms | p99.9 ms | added p50 ms | added p99 ms | non-2xx / errors | proxy CPU % | upstream conns opened |"
    rep "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    d50=$(med fixed direct p50_us); d99=$(med fixed direct p99_us)
    for t in "${TARGETS[@]}"; do
        p50=$(med fixed "$t" p50_us); p99=$(med fixed "$t" p99_us)
        add50=$(awk -v a="$p50" -v b="$d50" 'BEGIN{printf "%.3f", (a-b)/1000}')
        add99=$(awk -v a="$p99" -v b="$d99" 'BEGIN{printf "%.3f", (a-b)/1000}')
        [ "$t" = direct ] && { add50="-"; add99="-"; }
        rep "| $t | $(med fixed "$t" achieved_rps) | $(ms "$p50") | $(ms "$p99") | $(ms "$(med fixed "$t" p999_us)") | $add50 | $add99 | $(sumk fixed "$t" non2xx) / $(sumk fixed "$t" errors) | $(med fixed "$t" cpu_proxy) | $(med fixed "$t" up_conns) |"
    done
    rep ""
    rep "Latency from the scheduled send time when the previous answer on a connection came late (coordinated omission corrected), otherwise from the actual send. Added = target's percentile minus direct's percentile, measured in the same run."
    rep ""

    rep "### SSE streams (GET /mcp, one event per stream every $SSE_INTERVAL, opened at ${SSE_RATE}/s; each proxy freshly started)"
    rep ""
    rep "| target | streams open / asked | proxy RSS before MiB | RSS open MiB | per stream KiB | RSS after close MiB | relay p50 ms | p99 ms | max ms | events (per stream/s) | proxy CPU % events / idle |"
    rep "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r line; do
        set -- $line
        [ "$1" = sse ] || continue
        t=$2; n=$3
        ok=$(val "$line" open_ok); ev=$(val "$line" events); hs=$(val "$line" hold_s); ps=$(val "$line" pause_s)
        r0=$(val "$line" rss0); r1=$(val "$line" rss1); r2=$(val "$line" rss2)
        per=$(awk -v a="$r0" -v b="$r1" -v n="$ok" 'BEGIN{ if (n > 0) printf "%.1f", (b-a)/n; else print "n/a" }')
        rate=$(awk -v e="$ev" -v n="$ok" -v h="$hs" -v p="$ps" 'BEGIN{ if (n > 0 && h-p > 0) printf "%.2f", e/n/(h-p); else print "n/a" }')
        mib() { awk -v x="$1" 'BEGIN{printf "%.1f", x/1024}'; }
        if [ "$t" = direct ]; then
            rep "| $t | $ok / $n | - | - | - | - | $(ms "$(val "$line" p50_us)") | $(ms "$(val "$line" p99_us)") | $(ms "$(val "$line" max_us)") | $ev ($rate) | - |"
        else
            rep "| $t | $ok / $n | $(mib "$r0") | $(mib "$r1") | $per | $(mib "$r2") | $(ms "$(val "$line" p50_us)") | $(ms "$(val "$line" p99_us)") | $(ms "$(val "$line" max_us)") | $ev ($rate) | $(val "$line" cpu_active) / $(val "$line" cpu_idle) |"
        fi
    done <"$RAW"
    rep ""
    rep "Relay latency is the client's receive time minus the upstream's send time in the event (CLOCK_REALTIME, same machine), recorded once every stream is open; 'direct' is the floor the load client and upstream add. nginx's memory is the sum over master and workers. CPU with idle streams: upstream events paused (SIGUSR1), streams open."
    [ -n "$SSE_NOTE" ] && rep "" && rep "Note: $SSE_NOTE"
    rep ""

    rep "### Idle memory (RSS, PSS in MiB)"
    rep ""
    rep "| process | after start | after warm-up | after the load runs |"
    rep "|---|---:|---:|---:|"
    fmt_mem() { awk -v r="${1% *}" -v p="${1#* }" 'BEGIN{printf "%.1f / %.1f", r/1024, p/1024}'; }
    for p in "${PROXIES[@]}"; do
        rep "| $p | $(fmt_mem "${MEM_START[$p]}") | $(fmt_mem "${MEM_WARM[$p]}") | $(fmt_mem "${MEM_LOAD[$p]}") |"
    done
    rep ""
    rep "mcpgate-plain CPU while idle (no connections, after warm-up): ${IDLE_CPU_PLAIN}% of one core."
    rep ""

    # Targets of issue 20 (ratios to the bare proxy built the same way, to the work-stealing one, to nginx).
    rx() { awk -v a="$(med "$1" "$2" rps)" -v b="$(med "$1" "$3" rps)" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }
    full_add99=$(awk -v a="$(med fixed mcpgate-full p99_us)" -v b="$(med fixed direct p99_us)" 'BEGIN{printf "%.3f", (a-b)/1000}')
    big=$(awk '$1 == "sse" && $2 == "mcpgate-plain" { n = $3 } END { print n + 0 }' "$RAW")
    per_stream() { # target: KiB per open stream at $big streams
        local line; line=$(awk -v n="$big" -v t="$1" '$1 == "sse" && $2 == t && $3 == n' "$RAW")
        awk -v a="$(val "$line" rss0)" -v b="$(val "$line" rss1)" -v n="$(val "$line" open_ok)" 'BEGIN{ if (n > 0) printf "%.1f", (b-a)/n; else print "n/a" }'
    }
    sse_line=$(awk -v n="$big" '$1 == "sse" && $2 == "mcpgate-plain" && $3 == n' "$RAW")
    sse_p99=$(ms "$(val "$sse_line" p99_us)")
    sse_per=$(per_stream mcpgate-plain); bare_per=$(per_stream pingora-bare)
    idle_mb=$(awk -v r="${MEM_WARM[mcpgate-plain]% *}" 'BEGIN{printf "%.1f", r/1024}')
    verdict() { awk -v x="$1" -v op="$2" -v lim="$3" 'BEGIN{ if (x == "n/a") { print "n/a"; exit } ok = (op == ">=") ? (x >= lim) : (op == "<=") ? (x <= lim) : (x < lim); print ok ? "met" : "MISSED" }'; }
    rep "### Issue 20 targets (from this run)"
    rep ""
    rep "| target | goal | measured | |"
    rep "|---|---|---:|---|"
    for kind in json sse-answer; do
        x=$(rx "$kind" mcpgate-plain pingora-bare); rep "| $kind: mcpgate-plain vs pingora-bare | >= 0.92x | ${x}x | $(verdict "$x" '>=' 0.92) |"
        x=$(rx "$kind" mcpgate-full pingora-bare); rep "| $kind: mcpgate-full vs pingora-bare | >= 0.80x | ${x}x | $(verdict "$x" '>=' 0.80) |"
    done
    if [[ " ${TARGETS[*]} " == *" pingora-bare-ws "* ]]; then
        x=$(rx json mcpgate-plain pingora-bare-ws); rep "| json: mcpgate-plain vs pingora-bare-ws (Pingora's default runtime) | >= 1.25x | ${x}x | $(verdict "$x" '>=' 1.25) |"
        x=$(rx json pingora-bare pingora-bare-ws); rep "| (for reference) json: pingora-bare vs pingora-bare-ws | | ${x}x | |"
    fi
    x=$(rx json mcpgate-plain nginx); rep "| json: mcpgate-plain vs nginx | >= 0.5x | ${x}x | $(verdict "$x" '>=' 0.5) |"
    x=$(rx json pingora-bare nginx); rep "| (for reference) json: pingora-bare vs nginx | | ${x}x | |"
    rep "| SSE memory per stream, mcpgate-plain ($big streams) | <= pingora-bare's ($bare_per KiB) | $sse_per KiB | $(verdict "$sse_per" '<=' "$bare_per") |"
    rep "| SSE relay p99 (mcpgate-plain, $big streams) | < 1 ms | $sse_p99 ms | $(verdict "$sse_p99" '<' 1) |"
    rep "| full chain p99 added latency at $FR_RATE req/s | < 0.5 ms | $full_add99 ms | $(verdict "$full_add99" '<' 0.5) |"
    rep "| idle RSS (mcpgate-plain, after warm-up) | < 30 MB | $idle_mb MiB | $(verdict "$idle_mb" '<' 28.6) |"
    rep ""
    if [ "$big" -lt 5000 ]; then rep "(Only $big streams in this run: the SSE targets are stated for 10k streams.)"; rep ""; fi

    rep "<details><summary>Raw runs and command lines</summary>"
    rep ""
    rep '```'
    cat "$RAW" >>"$REPORT"
    rep '```'
    rep ""
    rep "Commands (\$T: the run's temporary directory; ports shown as PORT; the token as \$TOKEN; N = streams):"
    rep ""
    rep '```'
    rep "benches/e2e/run.sh $ORIG_ARGS"
    rep "$BUILD_CMD"
    cat "$CMDS" >>"$REPORT"
    rep '```'
    rep ""
    rep "Generated configs:"
    rep ""
    for f in "$T/nginx/nginx.conf" "$T/mcpgate-plain.yaml" "$T/mcpgate-full.yaml"; do
        rep '```'
        sed -e "s/$JWT_SECRET/<random 64-hex secret>/" -e "s|$T|\$T|g" "$f" >>"$REPORT"
        rep '```'
    done
    rep ""
    rep "</details>"
}


# ---- --report-only: render the report of a kept run again ----------------------------------------------
if [ -n "$REPORT_ONLY" ]; then
    T="$(cd "$REPORT_ONLY" && pwd)"; REPORT="$T/report.md"; RAW="$T/raw.txt"; CMDS="$T/commands.txt"
    [ -f "$T/state.sh" ] || die "$T/state.sh not found (run with --keep)"
    # shellcheck disable=SC1091
    source "$T/state.sh"
    : >"$REPORT"
    write_report
    cp "$REPORT" "$OUT"
    cat "$REPORT"
    exit 0
fi


# =========================================================================================================
# The run

# ---- machine set-up ----------------------------------------------------------------------------
need_pkgs=()
command -v wrk >/dev/null || need_pkgs+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v ss >/dev/null || need_pkgs+=(iproute2)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v openssl >/dev/null || need_pkgs+=(openssl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing: ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >&2 \
        || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]/nginx-light/nginx}" >&2
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

# Open files: 2 per proxied stream in the proxy; raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

BUILD_CMD="cargo build --release --bin mcpgate --example e2e-upstream --example e2e-bare --example sse_client --example e2e-load"
if [ "$BUILD" = 1 ]; then
    log "building: $BUILD_CMD"
    $BUILD_CMD >&2 || die "build failed"
fi
BIN="$ROOT/target/release"
MCPGATE="$BIN/mcpgate"
UPSTREAM="$BIN/examples/e2e-upstream"
BARE="$BIN/examples/e2e-bare"
SSE_CLIENT="$BIN/examples/sse_client"
LOADGEN="$BIN/examples/e2e-load"
RUN_START=$(date +%s)
for b in "$MCPGATE" "$UPSTREAM" "$BARE" "$SSE_CLIENT" "$LOADGEN"; do
    [ -x "$b" ] || die "missing $b (run without --no-build)"
done

T="$(mktemp -d /tmp/mcpgate-e2e.XXXXXX)"
REPORT="$T/report.md"
RAW="$T/raw.txt"          # one line per measured run: kind target round key=value...
CMDS="$T/commands.txt"
: >"$REPORT"; : >"$RAW"; : >"$CMDS"

trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# The whole run is bounded: a watchdog ends it (through the EXIT trap) after $BUDGET seconds.
(
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$BUDGET" & s=$!
    wait "$s"
    echo "[watchdog] run exceeded ${BUDGET}s, aborting" >&2
    kill -TERM $$ 2>/dev/null
) &
WATCHDOG=$!
log "mode $MODE; temporary directory $T"
make_token
make_body
start_upstream
free_port NGINX_PORT; free_port BARE_PORT; free_port BARE_WS_PORT; free_port PLAIN_PORT; free_port PLAIN_ADMIN; free_port FULL_PORT; free_port FULL_ADMIN
write_nginx_conf
write_mcpgate_conf mcpgate-plain "$PLAIN_PORT" "$PLAIN_ADMIN" 0
write_mcpgate_conf mcpgate-full "$FULL_PORT" "$FULL_ADMIN" 1
record_cmd "$NGINX" -t -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf"
"$NGINX" -t -p "$T/nginx/" -e "$T/nginx/error.log" -c "$T/nginx/nginx.conf" >"$T/nginx/check.log" 2>&1 \
    || die "nginx config: $(cat "$T/nginx/check.log")"
start_nginx
start_bare
[ "$RUNTIME" = per_core ] && start_bare_ws
start_mcpgate mcpgate-plain
start_mcpgate mcpgate-full
log "upstream $UP_ADDR, nginx :$NGINX_PORT, pingora-bare :$BARE_PORT, pingora-bare-ws :$BARE_WS_PORT, mcpgate-plain :$PLAIN_PORT, mcpgate-full :$FULL_PORT"
for t in "${TARGETS[@]}"; do wait_ready "$t"; done

# Each target answers the request as expected, and the full chain really enforces its policies.
for t in "${TARGETS[@]}"; do
    post_check 200 "$t" -H "Authorization: Bearer $TOKEN" --data-binary "@$T/body.json" || die "$t: POST failed"
    grep -q '"result"' "$T/check.body" || die "$t: no JSON-RPC result in the answer"
    http_check 200 "http://127.0.0.1:$(target_port "$t")/mcp-sse" -X POST -H "$HDR_CT" -H "$HDR_ACCEPT" \
        -H "Authorization: Bearer $TOKEN" --data-binary "@$T/body.json" || die "$t: SSE POST failed"
    grep -q '^event: message' "$T/check.body" || die "$t: no SSE event in the answer to POST /mcp-sse"
done
post_check 401 mcpgate-full --data-binary "@$T/body.json" || die "full chain: a request without a token was not refused"
post_check 401 mcpgate-full -H "Authorization: Bearer x$TOKEN" --data-binary "@$T/body.json" || die "full chain: a bad token was not refused"
post_check 403 mcpgate-full -H "Authorization: Bearer $TOKEN" --data-binary "@$T/denied.json" || die "full chain: a denied tool was not refused"
log "checks passed: every target answers; the full chain refuses missing/bad tokens (401) and a denied tool (403)"

sleep 1
declare -A MEM_START=()
for p in "${PROXIES[@]}"; do MEM_START[$p]=$(mem_kb $(proc_pids "$p")); done

# Warm-up: every target once, not recorded.
log "warm-up (${WARM}s per target)"
for t in "${TARGETS[@]}"; do wrk_run warm "$t" 0 /mcp "$WARM" 0; done
sleep 1
declare -A MEM_WARM=()
for p in "${PROXIES[@]}"; do MEM_WARM[$p]=$(mem_kb $(proc_pids "$p")); done
c0=$(cpu_ticks $(proc_pids mcpgate-plain)); sleep 2; c1=$(cpu_ticks $(proc_pids mcpgate-plain))
IDLE_CPU_PLAIN=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN{printf "%.1f", (b-a)/hz/2*100}')

# Throughput, interleaved: each round rotates the order of the targets.
for kind in json sse-answer; do
    path=/mcp; [ "$kind" = sse-answer ] && path=/mcp-sse
    log "throughput ($kind, POST $path): $ROUNDS rounds x ${#TARGETS[@]} targets, ${WARM}s warm-up + ${DUR}s"
    for r in $(seq 1 "$ROUNDS"); do
        for k in $(seq 0 $(( ${#TARGETS[@]} - 1 ))); do
            t=${TARGETS[$(( (k + r - 1) % ${#TARGETS[@]} ))]}
            wrk_run warm "$t" "$r" "$path" "$WARM" 0
            wrk_run "$kind" "$t" "$r" "$path" "$DUR" 1
        done
    done
done

log "fixed rate: ${FR_RATE} req/s, $FR_ROUNDS round(s) x ${#TARGETS[@]} targets, 1s warm-up + ${FR_DUR}s"
for r in $(seq 1 "$FR_ROUNDS"); do
    for k in $(seq 0 $(( ${#TARGETS[@]} - 1 ))); do
        fixed_run "${TARGETS[$(( (k + r - 1) % ${#TARGETS[@]} ))]}" "$r"
    done
done
sleep 1
declare -A MEM_LOAD=()
for p in "${PROXIES[@]}"; do MEM_LOAD[$p]=$(mem_kb $(proc_pids "$p")); done

# SSE streams. The proxy holds 2 descriptors per stream (client and upstream side); the count is
# capped by the hard open-file limit when that is below what 10k streams need.
SSE_NOTE=""
for n in "${SSE_COUNTS[@]}"; do
    max=$(( (NOFILE - 200) / 2 ))
    if [ "$n" -gt "$max" ]; then
        SSE_NOTE="$n streams capped at $max: the hard open-file limit here is $NOFILE (ulimit -Hn; raising it needs CAP_SYS_RESOURCE) and a proxy holds 2 descriptors per stream."
        n=$max
    fi
    log "SSE streams: $n per target, ${SSE_RATE}/s opening, events every $SSE_INTERVAL"
    for t in "${TARGETS[@]}"; do sse_run "$t" "$n"; done
done


ELAPSED=$(( $(date +%s) - RUN_START ))
declare -p MODE QUICK ROUNDS WARM DUR FR_ROUNDS FR_DUR FR_RATE FR_CONNS SSE_RATE SSE_INTERVAL SSE_ACTIVE \
    SSE_IDLE WRK_THREADS WRK_CONNS THREADS NOFILE MEM_START MEM_WARM MEM_LOAD IDLE_CPU_PLAIN SSE_NOTE \
    JWT_SECRET ORIG_ARGS ELAPSED NGINX BUILD_CMD TARGETS PROXIES RUNTIME LOADAVG_START >"$T/state.sh"
write_report

mkdir -p "$(dirname "$OUT")"
cp "$REPORT" "$OUT"
cat "$REPORT"
log "done in $(( $(date +%s) - START_TS ))s; report written to $OUT"
