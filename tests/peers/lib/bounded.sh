# Sourced by the peer test wrappers: runs a driver under `timeout` (it bounds the driver itself;
# the driver bounds and cleans up what it starts), passes an interrupt on to it so that it can
# clean up, and exits with its status.
# usage: run_bounded SECONDS KILL_AFTER_SECONDS COMMAND [ARGS...]
run_bounded() {
    local budget="$1" grace="$2"
    shift 2
    timeout -k "$grace" "$budget" "$@" &
    local pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP
    set +e
    wait "$pid"; local rc=$?
    while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
    exit "$rc"
}
