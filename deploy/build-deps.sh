#!/usr/bin/env bash
# Installs what building mcpgate needs when it is missing, and says so before a build fails
# half-way: cmake (Pingora's zlib-ng), perl, make and a C compiler (the vendored OpenSSL).
# Debian or Ubuntu, as root or with sudo. The Rust toolchain (cargo, 1.85 or newer) is not
# installed here: get it from your distribution or rustup.
# Used by deploy/demo.sh (the README's first command) and tests/run-all.sh (the test command).
set -euo pipefail

log() { echo "[build deps] $*" >&2; }

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v perl >/dev/null || need+=(perl)
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(build-essential)
if ((${#need[@]})); then
  log "missing: ${need[*]}; installing them with apt-get"
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      log "not root and no sudo: install ${need[*]} yourself, then run this again"; exit 2
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "no apt-get on this machine: install ${need[*]} with its package manager, then run this again"
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || {
  log "no cargo: install the Rust toolchain (1.85 or newer, e.g. with rustup), then run this again"
  exit 2
}
log "cmake, perl, make, cc and cargo are present"
