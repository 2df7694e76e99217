#!/usr/bin/env bash
# Checks every deployment file in deploy/ with a real tool where one exists:
#
#   prometheus/   promtool check config (and the rule files it names), promtool check rules,
#                 promtool test rules (each alert fires, and stays quiet where it should); the
#                 commented Kubernetes scrape job is extracted and parsed (and checked by promtool
#                 when promtool has Kubernetes discovery, which Debian's does not)
#   metric names  every mcpgate_* name in the alerts, their tests and the dashboard exists in
#                 src/observability/metrics.rs, with the labels and label values the source gives
#   grafana/      the dashboard is JSON with the expected structure, and every PromQL expression
#                 in it parses (promtool check rules on one recording rule per expression)
#   kubernetes/   every manifest parses; kustomization lists them; Deployment, Service,
#                 PodMonitor, PDB and ConfigMap agree; `kubectl kustomize` renders them (when
#                 kubectl is installed); the ConfigMap's config passes `mcpgate -t`
#   docker/       Dockerfile structure (no Docker engine needed); the image's config passes -t
#   systemd/      the unit agrees with its config; `systemd-analyze verify` and an offline
#                 `systemd-analyze security` exposure limit (when systemd-analyze is available);
#                 the config passes -t
#   upgrade.sh    bash -n, shellcheck (when installed), and a real graceful upgrade of a gateway
#                 on loopback ports: no connection refused while the sockets change hands
#
# Checks that run the gateway need a built binary: MCPGATE_BIN=target/debug/mcpgate deploy/check.sh
# Without it they are skipped (and say so). Needs python3 with PyYAML (Debian: python3-yaml) for
# the YAML checks and promtool (Debian: prometheus); no network beyond loopback.
# Exit status: 0 when every check that ran passed, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
DEPLOY=deploy
LIB=$DEPLOY/check_lib.py
METRICS_RS=src/observability/metrics.rs

passed=0
failed=0
skipped=0
failures=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mcpgate-deploy-check.XXXXXX")
# Gateways started by the live check (which runs in a subshell) are listed here, so that they are
# stopped whatever happens.
LIVE_PIDS=$TMP/live.pids

cleanup() {
  local p
  if [[ -f $LIVE_PIDS ]]; then
    while read -r p; do
      # only a process still running our test config (not a later process that reused the pid)
      [[ $p =~ ^[0-9]+$ ]] && tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -qF "$TMP/live/" &&
        kill -INT "$p" 2>/dev/null
    done <"$LIVE_PIDS"
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# run NAME COMMAND...: runs a check, indents its output, counts the result.
run() {
  local name=$1
  shift
  printf '\n== %s\n' "$name"
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ -n $out ]] && printf '%s\n' "$out" | sed 's/^/   /'
  if ((rc == 0)); then
    printf '   ok\n'
    passed=$((passed + 1))
  else
    printf '   FAILED (exit %s)\n' "$rc"
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

skip() {
  printf '\n== %s\n   skipped: %s\n' "$1" "$2"
  skipped=$((skipped + 1))
}

# --- tools -----------------------------------------------------------------------------------------
if command -v promtool >/dev/null; then
  HAVE_PROMTOOL=1
else
  HAVE_PROMTOOL=0
fi
PY=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
    PY=$candidate
    break
  fi
done
PY_ANY=${PY:-python3}
NO_YAML="no python3 with PyYAML (Debian package python3-yaml, or pip install PyYAML)"
BIN=${MCPGATE_BIN:-}
if [[ -n $BIN && ! -x $BIN ]]; then
  echo "MCPGATE_BIN=$BIN is not an executable file" >&2
  exit 1
fi
NO_BIN="MCPGATE_BIN is not set (e.g. MCPGATE_BIN=target/debug/mcpgate)"

printf 'mcpgate deployment checks (%s)\n' "$PWD/$DEPLOY"
printf '  promtool: %s\n' "$(command -v promtool || echo missing)"
printf '  python3 with PyYAML: %s\n' "${PY:-missing}"
printf '  mcpgate binary: %s\n' "${BIN:-not given}"

# --- prometheus ------------------------------------------------------------------------------------
if ((HAVE_PROMTOOL)); then
  run "prometheus: promtool check config prometheus.yml (with the rule files it names)" \
    promtool check config $DEPLOY/prometheus/prometheus.yml
  run "prometheus: promtool check rules alerts.yml" \
    promtool check rules $DEPLOY/prometheus/alerts.yml
  run "prometheus: promtool test rules alerts_test.yml (each alert fires, and stays quiet)" \
    promtool test rules $DEPLOY/prometheus/alerts_test.yml
else
  run "prometheus: promtool" sh -c 'echo "promtool not found: install the Debian package prometheus"; exit 1'
fi

if [[ -n $PY ]]; then
  k8s_job() {
    "$PY" "$LIB" prometheus-k8s-job $DEPLOY/prometheus/prometheus.yml "$TMP/k8s-job.yml" || return 1
    command -v promtool >/dev/null || return 0
    local out
    if out=$(promtool check config "$TMP/k8s-job.yml" 2>&1); then
      printf '%s\n' "$out"
    elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
      echo "promtool check: skipped, this promtool is built without Kubernetes service discovery (Debian's is)"
    else
      printf '%s\n' "$out"
      return 1
    fi
  }
  run "prometheus: the commented Kubernetes scrape job" k8s_job
else
  skip "prometheus: the commented Kubernetes scrape job" "$NO_YAML"
fi

# --- metric names ----------------------------------------------------------------------------------
run "metric names and labels of alerts.yml, alerts_test.yml and the dashboard exist in $METRICS_RS" \
  "$PY_ANY" "$LIB" metrics $METRICS_RS $DEPLOY/prometheus/alerts.yml $DEPLOY/prometheus/alerts_test.yml \
  $DEPLOY/grafana/mcpgate-dashboard.json

# --- grafana ---------------------------------------------------------------------------------------
dashboard() {
  "$PY_ANY" "$LIB" dashboard $DEPLOY/grafana/mcpgate-dashboard.json "$TMP/dashboard-rules.yml" || return 1
  if command -v promtool >/dev/null; then
    echo "promtool check rules on the dashboard's expressions:"
    promtool check rules "$TMP/dashboard-rules.yml"
  else
    echo "promtool not found: expressions not parsed"
    return 1
  fi
}
run "grafana: mcpgate-dashboard.json structure, and every PromQL expression parses" dashboard

# --- kubernetes ------------------------------------------------------------------------------------
if [[ -n $PY ]]; then
  run "kubernetes: manifests parse and agree (labels, ports, probes, mounts, security, shutdown timing)" \
    "$PY" "$LIB" kubernetes $DEPLOY/kubernetes "$TMP/configmap-mcpgate.yaml"
else
  skip "kubernetes: manifests" "$NO_YAML"
fi
if command -v kubectl >/dev/null; then
  kustomize() {
    kubectl kustomize $DEPLOY/kubernetes >"$TMP/kustomized.yaml" || return 1
    echo "rendered: $(grep -c '^kind:' "$TMP/kustomized.yaml") resources ($(grep '^kind:' "$TMP/kustomized.yaml" | awk '{print $2}' | paste -sd, -))"
  }
  run "kubernetes: kubectl kustomize deploy/kubernetes" kustomize
else
  skip "kubernetes: kustomize build" "kubectl not found"
fi
if [[ -n $BIN && -s $TMP/configmap-mcpgate.yaml ]]; then
  run "kubernetes: the ConfigMap's config passes mcpgate -t (MCPGATE_UPSTREAM=http://127.0.0.1:3000: the Service name does not resolve here)" \
    env MCPGATE_UPSTREAM=http://127.0.0.1:3000 "$BIN" -c "$TMP/configmap-mcpgate.yaml" -t
elif [[ -z $BIN ]]; then
  skip "kubernetes: the ConfigMap's config passes mcpgate -t" "$NO_BIN"
else
  skip "kubernetes: the ConfigMap's config passes mcpgate -t" "the ConfigMap could not be extracted"
fi

# --- docker ----------------------------------------------------------------------------------------
run "docker: Dockerfile structure (stages, COPY sources, USER, EXPOSE, ENTRYPOINT/CMD)" \
  "$PY_ANY" "$LIB" dockerfile $DEPLOY/docker/Dockerfile $DEPLOY/docker/mcpgate.yaml .
if [[ -n $BIN ]]; then
  run "docker: the image's default config passes mcpgate -t" \
    env -u MCPGATE_UPSTREAM "$BIN" -c $DEPLOY/docker/mcpgate.yaml -t
else
  skip "docker: the image's default config passes mcpgate -t" "$NO_BIN"
fi

# --- systemd ---------------------------------------------------------------------------------------
if [[ -n $PY ]]; then
  run "systemd: mcpgate.service agrees with mcpgate.yaml (PIDFile, upgrade socket, stop timeout)" \
    "$PY" "$LIB" systemd $DEPLOY/systemd/mcpgate.service $DEPLOY/systemd/mcpgate.yaml
else
  skip "systemd: unit and config agree" "$NO_YAML"
fi
if [[ -n $BIN ]]; then
  run "systemd: mcpgate.yaml passes mcpgate -t" "$BIN" -c $DEPLOY/systemd/mcpgate.yaml -t
else
  skip "systemd: mcpgate.yaml passes mcpgate -t" "$NO_BIN"
fi
# systemd-analyze verify checks that ExecStart='s binary exists; where /usr/local/bin/mcpgate is
# not installed, a copy of the unit names an executable that exists instead (nothing else changes).
unit_copy() {
  mkdir -p "$TMP/systemd"
  local exe=/usr/local/bin/mcpgate
  if [[ ! -x $exe ]]; then
    exe=${BIN:-/bin/true}
    [[ $exe == /* ]] || exe=$PWD/$exe
    echo "(/usr/local/bin/mcpgate is not installed here: the checked copy runs $exe instead)"
  fi
  sed "s#/usr/local/bin/mcpgate#$exe#g" $DEPLOY/systemd/mcpgate.service >"$TMP/systemd/mcpgate.service"
}
# Whether systemd-analyze verify works here at all (it needs no running systemd, but a container
# may lack what it loads): a trivial unit must pass.
SA_WORKS=0
SA_WHY="systemd-analyze not available (Debian package systemd)"
if command -v systemd-analyze >/dev/null; then
  mkdir -p "$TMP/sa-probe"
  printf '[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n' >"$TMP/sa-probe/probe.service"
  if sa_out=$(systemd-analyze verify "$TMP/sa-probe/probe.service" 2>&1) && [[ -z $sa_out ]]; then
    SA_WORKS=1
  else
    SA_WHY="systemd-analyze verify does not work here (a trivial unit gives: ${sa_out:-an error})"
  fi
fi
if ((SA_WORKS)); then
  verify() {
    unit_copy
    local out rc=0
    out=$(systemd-analyze verify "$TMP/systemd/mcpgate.service" 2>&1) || rc=$?
    [[ -n $out ]] && printf '%s\n' "$out"
    # verify exits 0 on unknown keys and bad values, which it only prints: any output fails.
    ((rc == 0)) && [[ -z $out ]]
  }
  run "systemd: systemd-analyze verify mcpgate.service" verify
  security() {
    unit_copy >/dev/null
    local out rc=0
    # --threshold is the overall exposure x10: fail above 2.5 (the unit scores 1.7, "OK").
    out=$(systemd-analyze security --offline=true --threshold=25 "$TMP/systemd/mcpgate.service" 2>&1) || rc=$?
    grep -E 'Overall exposure' <<<"$out" || printf '%s\n' "$out" | tail -n 20
    return "$rc"
  }
  run "systemd: systemd-analyze security --offline (exposure at most 2.5)" security
else
  skip "systemd: systemd-analyze verify mcpgate.service" "$SA_WHY"
  skip "systemd: systemd-analyze security --offline" "$SA_WHY"
fi

# --- scripts ---------------------------------------------------------------------------------------
run "upgrade.sh, check.sh, demo.sh, build-deps.sh: bash -n" bash -n $DEPLOY/upgrade.sh $DEPLOY/check.sh $DEPLOY/demo.sh $DEPLOY/build-deps.sh
if command -v shellcheck >/dev/null; then
  run "upgrade.sh, check.sh, demo.sh, build-deps.sh: shellcheck" shellcheck $DEPLOY/upgrade.sh $DEPLOY/check.sh $DEPLOY/demo.sh $DEPLOY/build-deps.sh
else
  skip "upgrade.sh, check.sh, demo.sh, build-deps.sh: shellcheck" "shellcheck not installed (Debian package shellcheck)"
fi

# --- live graceful upgrade ---------------------------------------------------------------------------
# A gateway daemonized with -d on loopback ports, upgraded with deploy/upgrade.sh while a client
# keeps connecting to both listeners: no connection may be refused, the pid file must name the
# new process, and the old one must exit. Then a config the new binary refuses (nothing may
# change), and the --in-unit path that systemd runs.
free_ports() {
  python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))'
}

# true while pid $1 runs (a zombie waiting to be reaped by its new parent does not count)
running() {
  local state
  state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

live_upgrade() {
  local dir=$TMP/live p_listen p_admin p_up old new
  mkdir -p "$dir"
  read -r p_listen p_admin p_up < <(free_ports)
  cat >"$dir/mcpgate.yaml" <<EOF
listen: 127.0.0.1:$p_listen
admin: 127.0.0.1:$p_admin
server:
  threads: 1
  grace_period: 2s
  graceful_shutdown_timeout: 1s
  pid_file: $dir/mcpgate.pid
  upgrade_sock: $dir/upgrade.sock
access_log:
  enabled: false
endpoints:
  - path: /mcp
    backend:
      hosts: [http://127.0.0.1:$p_up]
      health_check: {enabled: false}
EOF
  "$BIN" -d -c "$dir/mcpgate.yaml" </dev/null >>"$dir/gateway.log" 2>&1 || { cat "$dir/gateway.log"; return 1; }
  wait_http() { # port path
    python3 - "$1" "$2" <<'EOF'
import sys, time, urllib.request, urllib.error
deadline = time.time() + 10
while time.time() < deadline:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=1)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
  }
  wait_http "$p_admin" /healthz || { echo "the gateway did not come up"; cat "$dir/gateway.log"; return 1; }
  old=$(tr -d '[:space:]' <"$dir/mcpgate.pid")
  echo "$old" >>"$LIVE_PIDS"
  echo "gateway PID $old on 127.0.0.1:$p_listen (admin $p_admin)"

  # A client connecting to both listeners every 20 ms for the whole upgrade; any connection
  # refused or reset is a failure (HTTP statuses are fine: /mcp has no upstream here).
  python3 - "$p_listen" "$p_admin" "$dir/probe.stop" >"$dir/probe.out" 2>&1 <<'EOF' &
import os, sys, time, http.client
ports, stop = sys.argv[1:3], sys.argv[3]
ok = bad = 0
errors = {}
while not os.path.exists(stop):
    for port, path in ((ports[0], "/mcp"), (ports[1], "/healthz")):
        try:
            c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
            ok += 1
        except Exception as e:
            bad += 1
            errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    time.sleep(0.02)
print(f"client: {ok} requests answered, {bad} failed {errors if errors else ''}")
sys.exit(1 if bad or not ok else 0)
EOF
  local probe=$!
  local rc=0
  deploy/upgrade.sh --bin "$BIN" --config "$dir/mcpgate.yaml" --timeout 30 || rc=$?
  touch "$dir/probe.stop"
  local probe_rc=0
  wait "$probe" || probe_rc=$?
  cat "$dir/probe.out"
  ((rc == 0)) || { echo "upgrade.sh exited $rc"; cat "$dir/gateway.log"; return 1; }
  ((probe_rc == 0)) || { echo "connections failed during the upgrade"; return 1; }
  new=$(tr -d '[:space:]' <"$dir/mcpgate.pid")
  echo "$new" >>"$LIVE_PIDS"
  [[ $new != "$old" ]] || { echo "the pid file still names $old"; return 1; }
  ! running "$old" || { echo "the old process $old still runs"; return 1; }
  wait_http "$p_admin" /readyz || { echo "the new process does not answer /readyz"; return 1; }
  echo "upgraded: PID $old -> $new, no connection refused"

  # A config the new binary refuses: exit 1, nothing changes.
  sed 's/grace_period: 2s/grace_period: soon/' "$dir/mcpgate.yaml" >"$dir/bad.yaml"
  rc=0
  deploy/upgrade.sh --bin "$BIN" --config "$dir/bad.yaml" --pid-file "$dir/mcpgate.pid" \
    --upgrade-sock "$dir/upgrade.sock" --timeout 30 >"$dir/bad.out" 2>&1 || rc=$?
  sed 's/^/  | /' "$dir/bad.out"
  ((rc == 1)) || { echo "upgrade.sh with a refused config exited $rc, expected 1"; return 1; }
  [[ $(tr -d '[:space:]' <"$dir/mcpgate.pid") == "$new" ]] && running "$new" ||
    { echo "a refused upgrade changed the running gateway"; return 1; }
  echo "a config the new binary refuses: exit 1, PID $new untouched"

  # The path systemd runs (ExecReload= during upgrade.sh --systemd): MAINPID set, no waiting for
  # the old process, output left to the caller (the journal there, a log file here).
  rc=0
  MAINPID=$new deploy/upgrade.sh --in-unit --bin "$BIN" --config "$dir/mcpgate.yaml" \
    >>"$dir/in-unit.log" 2>&1 </dev/null || rc=$?
  grep '^upgrade.sh' "$dir/in-unit.log" | sed 's/^/  | /'
  ((rc == 0)) || { echo "upgrade.sh --in-unit exited $rc"; cat "$dir/in-unit.log"; return 1; }
  local third
  third=$(tr -d '[:space:]' <"$dir/mcpgate.pid")
  echo "$third" >>"$LIVE_PIDS"
  [[ $third != "$new" ]] && running "$third" || { echo "--in-unit: the pid file does not name a new live process"; return 1; }
  local i
  for ((i = 0; i < 150; i++)); do running "$new" || break; sleep 0.2; done
  ! running "$new" || { echo "--in-unit: PID $new did not exit"; return 1; }
  echo "--in-unit: PID $new -> $third"

  kill -TERM "$third"
  for ((i = 0; i < 100; i++)); do running "$third" || break; sleep 0.1; done
  ! running "$third" || { echo "PID $third did not stop on SIGTERM"; return 1; }
  echo "SIGTERM: PID $third stopped"
}
if [[ -n $BIN ]]; then
  run "upgrade.sh: a real graceful upgrade on loopback (no connection refused), a refused config, --in-unit" live_upgrade
else
  skip "upgrade.sh: a real graceful upgrade on loopback" "$NO_BIN"
fi

# --- summary ---------------------------------------------------------------------------------------
echo
if ((failed)); then
  printf 'failed checks:\n'
  printf '  %s\n' "${failures[@]}"
fi
printf 'deploy: %d passed, %d failed, %d skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
