#!/usr/bin/env bash
# OAuth end-to-end test of mcpgate: the Python MCP SDK's own OAuth client gets a 401 from the
# gateway, reads its RFC 9728 metadata, registers with a small test authorization server, gets a
# token with PKCE and the RFC 8707 resource, and completes tools/call through the gateway.
#
# usage: tests/peers/oauth/run.sh GATEWAY_BIN
# Prints one row per check and, last, `oauth: N passed, M failed`. Exit 0: all passed;
# 1: a check failed; 2: the test could not run.
# Environment: OAUTH_TIMEOUT (overall seconds, default 120), OAUTH_KEEP=1 (keep the work dir),
# PEERS_SKIP_INSTALL=1 (do not run tests/peers/install.sh first).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$(dirname "$HERE")"
if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

# The py-mcp2 venv (mcp 2.x, PyJWT, cryptography) comes from the peers' installer, which returns
# at once when it is already installed.
[ -n "${PEERS_SKIP_INSTALL:-}" ] || "$PEERS/install.sh"
PY="$PEERS/.deps/py-mcp2/bin/python"
if [ ! -x "$PY" ]; then
    echo "oauth: $PY is missing; run tests/peers/install.sh" >&2
    echo "oauth: 0 passed, 1 failed"
    exit 2
fi

budget="${OAUTH_TIMEOUT:-120}"
export OAUTH_TIMEOUT="$budget"
# The driver bounds each step and kills every process it started on exit.
. "$PEERS/lib/bounded.sh"
run_bounded "$((budget + 20))" 10 "$PY" -u "$HERE/oauth_test.py" "$1"
