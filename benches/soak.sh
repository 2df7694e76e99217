#!/usr/bin/env bash
# Soak of mcpgate (issue 19; not in CI): mixed traffic at a steady rate for a long time, checking
# that the gateway's memory, descriptors, threads and open-stream count stay flat and that no
# request fails except those the soak causes on purpose.
#
#   benches/soak.sh                   30 minutes, release build
#   benches/soak.sh --minutes 2       a smoke run
#   benches/soak.sh --debug           a debug build instead (slower; for when release does not fit)
#   benches/soak.sh --bin PATH        an mcpgate binary already built (e2e-upstream beside it in
#                                     examples/, or --e2e PATH)
#   benches/soak.sh --keep            keep the working directory (configs, logs, access log)
#   benches/soak.sh ... -- --rate 10  more options for the driver (benches/soak/driver.py --help)
#
# What it does: builds mcpgate and the e2e-upstream example (cargo build --release, in this
# checkout's target/), then runs benches/soak/driver.py (Python 3 stdlib), which starts the demo
# MCP server (`mcpgate demo --upstream-only`), e2e-upstream and a gateway with a rate limit, drives
# JSON and SSE POSTs, tools/call with progress, calls abandoned mid-stream, long GET streams
# opening and closing, a rate limit tripped on purpose, a config reload every minute and an
# upstream restart every 3 minutes, and samples the gateway every 10 s (see the driver's header).
# The report (Markdown) goes to stdout; progress to stderr. Exits non-zero on a leak or on an
# unexpected failure. Every process it starts is stopped on exit.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MINUTES=30 PROFILE=release BIN="" E2E="" KEEP=0
while (($#)); do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    --bin) BIN="$2"; shift 2 ;;
    --e2e) E2E="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    --) shift; break ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [[ -z $BIN ]]; then
  flags=(); [[ $PROFILE == release ]] && flags=(--release)
  echo "== building mcpgate and e2e-upstream ($PROFILE)" >&2
  b0=$SECONDS
  (cd "$ROOT" && cargo build "${flags[@]}" --bin mcpgate --example e2e-upstream) >&2
  echo "built in $((SECONDS - b0)) s" >&2
  BIN="$ROOT/target/$PROFILE/mcpgate"
fi
[[ -n $E2E ]] || E2E="$(dirname "$BIN")/examples/e2e-upstream"
for b in "$BIN" "$E2E"; do [[ -x $b ]] || { echo "missing $b" >&2; exit 1; }; done

T="$(mktemp -d /tmp/mcpgate-soak.XXXXXX)"
cleanup() { if ((KEEP)); then echo "kept $T" >&2; else rm -rf "$T"; fi; }
trap cleanup EXIT
"$BIN" --version >&2 || true
python3 "$ROOT/benches/soak/driver.py" --mcpgate "$BIN" --e2e-upstream "$E2E" --dir "$T" \
  --minutes "$MINUTES" "$@"
