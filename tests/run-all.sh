#!/usr/bin/env bash
# Runs every test of mcpgate. Installs what the tests need first (Debian packages, Node 22, the
# MCP conformance suite, the Python mcp SDKs), so it works on a fresh Debian machine (as root).
# CI runs exactly this script (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "build prerequisites (deploy/build-deps.sh: cmake, perl, make, cc)"
deploy/build-deps.sh

step "system packages for the tests"
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v systemd-analyze >/dev/null || need+=(systemd)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "promtool, curl, redis-server, systemd-analyze, python3-yaml: present"

step "peer dependencies (Node 22, conformance suite, Python mcp SDKs)"
tests/peers/install.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (every peer required: a missing redis-server or Python SDK fails, never skips)"
MCPGATE_REQUIRE_PEERS=1 cargo test --locked

step "fuzzing: AFL++ over the parsers, seeds and regressions replayed (fails on any), then 30 s per target (tests/fuzz.sh --ci)"
tests/fuzz.sh --ci

step "deploy files: promtool (config, rules, rule tests, dashboard queries), systemd-analyze, manifests, a live upgrade with deploy/upgrade.sh"
MCPGATE_BIN=target/debug/mcpgate deploy/check.sh

step "OAuth: the Python SDK's own OAuth flow through the gateway (test authorization server)"
PEERS_SKIP_INSTALL=1 tests/peers/oauth/run.sh target/debug/mcpgate

step "real peers: conformance suite and Python SDKs, directly and through the gateway"
PEERS_SKIP_INSTALL=1 tests/peers/run.sh target/debug/mcpgate
