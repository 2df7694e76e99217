#!/usr/bin/env bash
# Instructions per request of a proxy, counted by valgrind's callgrind (user space only; exact and
# repeatable, unlike throughput on a busy machine).
#
#   benches/e2e/instructions.sh [--mode plain|full|bare] [--runtime per_core|work_stealing]
#                               [--bin PATH] [--requests N] [--keep]
#
#   --mode     plain: mcpgate without policies (default); full: the full chain of run.sh (JWT,
#              inspection, tool allow-list, CEL, rate limit); bare: benches/e2e/bare.rs
#   --runtime  mcpgate's server.runtime (bare: --per-core or not); default per_core; `none`: not
#              set (for binaries that predate the setting: their default, work stealing)
#   --bin      the mcpgate (or e2e-bare) binary; default target/release/mcpgate (or e2e-bare)
#   --requests requests measured, after 200 not measured (default 1000)
#   --keep     keep the temporary directory (callgrind output: callgrind_annotate FILE)
#
# Runs the proxy twice under callgrind (200 requests, then 200 + N) and prints one line: mode,
# runtime, and the difference of the two runs' instructions (Ir) per request of difference, so
# start-up and shut-down cancel out. Needs valgrind and the release helpers (benches/e2e/run.sh builds them).
set -Eeuo pipefail
MODE=plain; RUNTIME=per_core; BIN=""; REQUESTS=1000; KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE="$2"; shift ;;
        --runtime) RUNTIME="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        --requests) REQUESTS="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REL="$ROOT/target/release"
[ -n "$BIN" ] || { [ "$MODE" = bare ] && BIN="$REL/examples/e2e-bare" || BIN="$REL/mcpgate"; }
for b in "$BIN" "$REL/examples/e2e-upstream" "$REL/examples/e2e-load"; do
    [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

T="$(mktemp -d /tmp/mcpgate-instr.XXXXXX)"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ "$KEEP" = 1 ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
"$REL/examples/e2e-upstream" --listen 127.0.0.1:0 --threads 1 >"$T/up.out" 2>"$T/up.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q '^LISTEN ' "$T/up.out" 2>/dev/null && break; sleep 0.05; done
UP=$(awk '/^LISTEN /{print $2}' "$T/up.out")
[ -n "$UP" ] || { echo "upstream did not start" >&2; exit 1; }
PORT=$(port)

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
SECRET=$(openssl rand -hex 32)
h=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
p=$(printf '{"sub":"bench-client","iss":"mcpgate-bench","aud":"mcpgate-bench","exp":%d,"roles":["bench"]}' $(( $(date +%s) + 86400 )) | b64url)
TOKEN="$h.$p.$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$SECRET" -binary | b64url)"
pad=$(head -c 2000 /dev/zero | tr '\0' 'x')
pre='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"'
post='"},"_meta":{"progressToken":"bench"}}}'
printf '%s%s%s' "$pre" "${pad:0:$(( 1024 - ${#pre} - ${#post} ))}" "$post" >"$T/body.json"

if [ "$MODE" = bare ]; then
    extra=(); [ "$RUNTIME" = per_core ] && extra=(--per-core)
    cmd=("$BIN" --listen "127.0.0.1:$PORT" --upstream "$UP" --threads 2 "${extra[@]}")
else
    {
        printf 'listen: 127.0.0.1:%s\nserver:\n  threads: 2\n' "$PORT"
        [ "$RUNTIME" = none ] || printf '  runtime: %s\n' "$RUNTIME"
        printf '  pid_file: %s/pid\n  upgrade_sock: %s/upgrade.sock\n  grace_period: 1s\n  graceful_shutdown_timeout: 1s\naccess_log:\n  enabled: false\n' "$T" "$T"
        if [ "$MODE" = full ]; then
            cat <<EOF
policies:
  auth:
    jwt:
      secret: "$SECRET"
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
        printf 'endpoints:\n  - path: /mcp\n    backend:\n      hosts: [http://%s]\n' "$UP"
    } >"$T/mcpgate.yaml"
    cmd=("$BIN" -c "$T/mcpgate.yaml")
fi
# One run under callgrind: start, N requests, stop; prints "requests Ir". Two runs with different
# N give the instructions per request without the start and the stop.
measure() { # n
    local n="$1" out="$T/callgrind.$1.out"
    MCPGATE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$T/proxy.$n.log" 2>&1 &
    local vg=$!
    PIDS=("$vg" "${PIDS[@]}")
    local ok=0
    for _ in $(seq 1 300); do
        kill -0 "$vg" 2>/dev/null || { echo "the proxy exited: $(tail -5 "$T/proxy.$n.log")" >&2; exit 1; }
        [ "$(curl -s -o /dev/null -w '%{http_code}' -m 2 -X POST -H 'Content-Type: application/json' \
            -H 'Accept: application/json, text/event-stream' -H "Authorization: Bearer $TOKEN" \
            --data-binary "@$T/body.json" "http://127.0.0.1:$PORT/mcp")" = 200 ] && { ok=1; break; }
        sleep 0.2
    done
    [ "$ok" = 1 ] || { echo "the proxy did not answer" >&2; exit 1; }
    local r0 r1
    r0=$(reqs)
    "$REL/examples/e2e-load" --addr "127.0.0.1:$PORT" --path /mcp --body-file "$T/body.json" \
        --header 'Content-Type: application/json' --header 'Accept: application/json, text/event-stream' \
        --header 'MCP-Protocol-Version: 2025-06-18' --header "Authorization: Bearer $TOKEN" \
        --rate 100 --connections 4 --duration $(( n / 100 )) --warmup 0 >"$T/load.out" 2>&1
    grep -q ' non2xx=0 errors=0 ' "$T/load.out" || { echo "load failed: $(cat "$T/load.out")" >&2; exit 1; }
    r1=$(reqs)
    kill -INT "$vg"
    wait "$vg" 2>/dev/null || true
    PIDS=("${PIDS[@]:1}")
    echo "$(( r1 - r0 - 1 )) $(cat "$out"* | awk '/^summary:/{ s += $2 } END { print s + 0 }')"
}
reqs() { curl -s -m 5 "http://$UP/stats" | sed 's/.*"requests":\([0-9]*\).*/\1/'; }
read -r n1 ir1 < <(measure 200)
read -r n2 ir2 < <(measure $(( 200 + REQUESTS )))
awk -v m="$MODE" -v r="$RUNTIME" -v n1="$n1" -v n2="$n2" -v a="$ir1" -v b="$ir2" 'BEGIN {
    n = n2 - n1; printf "mode=%s runtime=%s requests=%d (runs of %d and %d) Ir_per_request=%.0f\n", m, r, n, n1, n2, (n > 0 ? (b - a) / n : 0) }'
