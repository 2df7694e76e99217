#!/usr/bin/env bash
# Comparative real-peer test of mcpgate: the conformance suite and two Python SDK clients run
# against real MCP servers (server-everything, and a conformance fixture server), directly and
# through the gateway; every check that passes directly must pass through the gateway.
#
# usage: tests/peers/run.sh GATEWAY_BIN [peers.py options]     (peers.py --help lists them)
#        tests/peers/run.sh tests/peers/lib/standin_gateway.py  (harness self-test, no gateway)
# Prints a table and, last, `peers: N passed, M failed`. Exit 0: no difference; 1: a check
# differs through the gateway; 2: the harness could not run.
# Environment: PEERS_TIMEOUT (overall seconds, default 1500), PEERS_RETRIES (default 2),
# PEERS_SUITE (conformance suite, default all), PEERS_KEEP=1 (keep the work dir),
# PEERS_SKIP_INSTALL=1 (do not run install.sh first), PEERS_KNOWN (file of known differences).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -lt 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

[ -n "${PEERS_SKIP_INSTALL:-}" ] || "$HERE/install.sh"

budget="${PEERS_TIMEOUT:-1500}"
# The driver bounds every process it starts and kills them all on exit.
. "$HERE/lib/bounded.sh"
run_bounded "$((budget + 120))" 30 "$HERE/.deps/py-mcp2/bin/python" -u "$HERE/peers.py" "$@"
