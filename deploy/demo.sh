#!/usr/bin/env bash
# The README's first command: on a fresh Debian/Ubuntu machine, installs what the build needs
# (deploy/build-deps.sh: cmake, perl, make, a C compiler; with apt-get, as root or with sudo),
# builds the release binary and runs the gateway on conf/mcpgate.yaml in front of the built-in
# demo MCP server:
#
#   deploy/demo.sh                 # gateway on 127.0.0.1:8080/mcp, metrics on 127.0.0.1:9090
#   deploy/demo.sh -c my.yaml      # the same with another config (any arguments go to `mcpgate demo`)
#
# The first build compiles Pingora and its dependencies (vendored OpenSSL, zlib-ng): about 7 to
# 10 minutes on 2 cores, 3 to 4 on 8. Later runs start at once.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/build-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
echo "[demo] building mcpgate (release; the first build takes several minutes)" >&2
cargo build --release --locked --bin mcpgate
exec target/release/mcpgate demo "$@"
