#!/usr/bin/env bash
# Graceful binary upgrade of a running mcpgate, without refusing a single connection.
#
# How it works (Pingora's socket hand-over): a new process started with `-u` listens on
# server.upgrade_sock and waits (about 6 seconds at most) for the listening sockets; the old process,
# on SIGQUIT, sends them there, keeps accepting for 5 more seconds, then stops accepting, ends its
# open GET SSE streams (clients reconnect, to the new process) and exits once its requests in
# flight have finished or server.grace_period has passed. The old process stops after SIGQUIT even
# when nobody takes its sockets, so this script sends SIGQUIT only once the new process is known
# to be waiting for them.
#
# Steps: read the old pid from the pid file and check it is a live mcpgate; validate the config
# with the NEW binary (`-t`); start the new binary with `-u -d -c CONFIG` in the background; wait
# until it listens on the upgrade socket; send SIGQUIT to the old pid; wait until the new process
# has the sockets (its foreground part exits 0 once it has them and has daemonized) and the pid
# file names it; then wait, bounded, for the old process to finish draining, and report.
#
# Usage:
#   deploy/upgrade.sh [options]            a gateway started with `mcpgate -d` (no service manager);
#                                          run it as the user the gateway runs as
#   deploy/upgrade.sh --systemd [options]  the systemd unit deploy/systemd/mcpgate.service (as root)
#   upgrade.sh --in-unit [options]         internal: what --systemd makes the unit run (below)
#
# Options (environment variable in brackets):
#   --bin PATH           the new binary [MCPGATE_BIN]; default /usr/local/bin/mcpgate
#   --config PATH        the config file [MCPGATE_CONFIG]; default /etc/mcpgate/mcpgate.yaml
#   --pid-file PATH      [MCPGATE_PID_FILE]; default: server.pid_file of the config, else
#                        /tmp/mcpgate.pid (with --systemd: /run/mcpgate/mcpgate.pid)
#   --upgrade-sock PATH  [MCPGATE_UPGRADE_SOCK]; default: server.upgrade_sock of the config, else
#                        /tmp/mcpgate_upgrade.sock (with --systemd: /run/mcpgate/upgrade.sock)
#   --timeout SECONDS    how long to wait for the old process to finish draining
#                        [MCPGATE_UPGRADE_TIMEOUT]; default 60 (server.grace_period 30s + 5s
#                        hand-over + 5s graceful_shutdown_timeout, and a margin)
#   --log FILE           (plain mode) where the new daemon's stdout/stderr go (process log, and the
#                        access log when access_log.path is "-"); default: the same files as the
#                        old process's, when they are files, /dev/null or a terminal
#   --keep-env           (plain mode) start the new process with this shell's environment; by
#                        default it gets the old process's environment (from /proc), so ${VAR}
#                        references in the config resolve as they did for the old process
#   --unit NAME          (--systemd) the unit; default mcpgate.service
#   --helper PATH        (--systemd) this script as installed for the unit to run; default
#                        /usr/local/libexec/mcpgate/upgrade.sh
#
# Exit status: 0 upgraded (old process gone); 1 nothing was changed (a check failed, e.g. the new
# binary refused the config); 2 the hand-over failed after SIGQUIT (state reported; the gateway
# may be down: start it again); 3 upgraded, but the old process was still draining at --timeout
# (it exits by itself after server.grace_period + graceful_shutdown_timeout).
#
# Under systemd (--systemd): the new process must be started inside the unit. systemd follows a
# Type=forking service to a new main PID when the old main process exits (it reads PIDFile=
# again), but only accepts a PID that belongs to the unit's control group, unless the PID file is
# owned by root; and a process started from a login shell would also run outside the unit's
# sandbox and user. So --systemd installs a runtime drop-in
# (/run/systemd/system/UNIT.d/zz-mcpgate-upgrade.conf) that makes ExecReload= run this script with
# --in-unit, runs `systemctl reload UNIT` (which runs it in the unit's cgroup, as the unit's user,
# with its sandbox and environment), then removes the drop-in, so `systemctl reload` is a config
# hot reload (SIGHUP) again. The script must therefore be installed where the unit can read it
# (ProtectHome= hides /root and /home, PrivateTmp= hides /tmp):
#   install -D -m 0755 deploy/upgrade.sh /usr/local/libexec/mcpgate/upgrade.sh
set -euo pipefail

PROG=${0##*/}
MODE=plain
BIN=${MCPGATE_BIN:-/usr/local/bin/mcpgate}
CONF=${MCPGATE_CONFIG:-/etc/mcpgate/mcpgate.yaml}
PID_FILE=${MCPGATE_PID_FILE:-}
SOCK=${MCPGATE_UPGRADE_SOCK:-}
TIMEOUT=${MCPGATE_UPGRADE_TIMEOUT:-60}
LOG=
out_target=
err_target=
KEEP_ENV=0
UNIT=mcpgate.service
HELPER=/usr/local/libexec/mcpgate/upgrade.sh

# How long the new process may take to listen on the upgrade socket; Pingora's receiver itself
# gives up about 6 seconds after it starts listening.
SOCK_WAIT=10
# How long the hand-over and daemonizing may take after SIGQUIT (the old process retries
# connecting for about 5 seconds).
HANDOVER_WAIT=30
# How long the daemon may take to write its pid file after daemonizing.
PIDFILE_WAIT=10

say() { printf '%s: %s\n' "$PROG" "$*"; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit "${2:-1}"; }
usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

while (($#)); do
  case $1 in
    --systemd) MODE=systemd ;;
    --in-unit) MODE=in-unit ;;
    --bin) BIN=${2:?--bin needs a path}; shift ;;
    --config) CONF=${2:?--config needs a path}; shift ;;
    --pid-file) PID_FILE=${2:?--pid-file needs a path}; shift ;;
    --upgrade-sock) SOCK=${2:?--upgrade-sock needs a path}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
    --log) LOG=${2:?--log needs a file}; shift ;;
    --keep-env) KEEP_ENV=1 ;;
    --unit) UNIT=${2:?--unit needs a name}; shift ;;
    --helper) HELPER=${2:?--helper needs a path}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout must be a whole number of seconds, not '$TIMEOUT'"
[[ $UNIT == *.service ]] || UNIT=$UNIT.service

# The value of `server.<key>` in a YAML config written in block style (as conf/mcpgate.yaml is);
# empty when not found. Anything fancier: give --pid-file and --upgrade-sock.
server_setting() {
  awk -v key="$1" '
    /^[^[:space:]#]/ { in_server = ($0 ~ /^server:[[:space:]]*(#.*)?$/); next }
    in_server && $0 ~ ("^[[:space:]]+" key ":") {
      sub("^[[:space:]]+" key ":[[:space:]]*", "")
      sub(/[[:space:]]+#.*$/, "")
      gsub(/^["\047]|["\047]$/, "")
      print
      exit
    }' "$2"
}

now_ms() { date +%s%3N; }

version_of() { { "$1" --version 2>/dev/null || echo "version unknown"; } | head -n 1; }

# true while pid $1 exists and is not a zombie
alive() {
  local state
  [[ -r /proc/$1/stat ]] || return 1
  state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

# true when pid $1 is a running mcpgate (guards against a stale pid file naming a reused pid:
# SIGQUIT's default action is a core dump)
is_mcpgate() {
  alive "$1" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == mcpgate* ]]
}

read_pid() {
  local p
  p=$(tr -d '[:space:]' <"$1" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  printf '%s\n' "$p"
}

# --- --systemd: orchestrate an in-unit upgrade through a temporary ExecReload= ------------------
if [[ $MODE == systemd ]]; then
  [[ -n $PID_FILE ]] || PID_FILE=/run/mcpgate/mcpgate.pid
  [[ -n $SOCK ]] || SOCK=/run/mcpgate/upgrade.sock
  ((EUID == 0)) || die "--systemd needs root (it runs systemctl daemon-reload and reload)"
  command -v systemctl >/dev/null || die "systemctl not found"
  systemctl is-active --quiet "$UNIT" || die "$UNIT is not active; start it instead (systemctl start $UNIT)"
  for v in "$BIN" "$CONF" "$PID_FILE" "$SOCK" "$HELPER"; do
    [[ $v == /* ]] || die "'$v' must be an absolute path"
    [[ $v =~ ^[A-Za-z0-9/._+-]+$ ]] || die "'$v': only letters, digits and / . _ + - are allowed in paths written into the unit"
  done
  case $HELPER in
    /home/* | /root/* | /tmp/* | /var/tmp/* | /run/user/*)
      die "$HELPER is hidden from the unit (ProtectHome=, PrivateTmp=); install this script first: install -D -m 0755 $0 /usr/local/libexec/mcpgate/upgrade.sh" ;;
  esac
  [[ -x $HELPER ]] || die "$HELPER is missing; install this script first: install -D -m 0755 $0 $HELPER"
  if ! cmp -s "$0" "$HELPER"; then
    say "warning: $HELPER differs from $0; the unit runs $HELPER"
  fi
  [[ -x $BIN ]] || die "$BIN is not an executable file"
  old=$(systemctl show --property=MainPID --value "$UNIT")
  [[ $old =~ ^[1-9][0-9]*$ ]] || die "$UNIT has no main PID (MainPID=$old)"
  unit_pid_file=$(systemctl show --property=PIDFile --value "$UNIT")
  [[ $unit_pid_file == "$PID_FILE" ]] || die "$UNIT has PIDFile=$unit_pid_file, not $PID_FILE (give --pid-file)"
  say "unit $UNIT, main PID $old, new binary $BIN ($(version_of "$BIN"))"
  # The config is validated with the new binary inside the unit (--in-unit), as the unit's user
  # and with its environment (EnvironmentFile= secrets that ${VAR} references need), not here.
  started_at=$(date +%s)
  journal_tail() {
    command -v journalctl >/dev/null || return 0
    journalctl -u "$UNIT" --since "@$started_at" --no-pager -o cat 2>/dev/null | tail -n 30 | sed 's/^/  | /' >&2
  }
  dropin_dir=/run/systemd/system/$UNIT.d
  dropin=$dropin_dir/zz-mcpgate-upgrade.conf
  [[ -e $dropin ]] && die "$dropin exists: another upgrade is running, or one was interrupted (remove it and run systemctl daemon-reload)"
  cleanup() {
    if [[ -e $dropin ]]; then
      rm -f "$dropin"
      rmdir "$dropin_dir" 2>/dev/null || true
      systemctl daemon-reload || say "warning: systemctl daemon-reload failed; run it by hand"
    fi
  }
  trap cleanup EXIT
  mkdir -p "$dropin_dir"
  cat >"$dropin" <<EOF
# Written by $PROG --systemd for one binary upgrade, and removed when it ends. If you find it,
# an upgrade was interrupted: remove it and run systemctl daemon-reload.
[Service]
ExecReload=
ExecReload=$HELPER --in-unit --bin $BIN --config $CONF --pid-file $PID_FILE --upgrade-sock $SOCK
EOF
  systemctl daemon-reload
  say "upgrading inside $UNIT (systemctl reload runs $HELPER --in-unit)"
  if ! systemctl reload "$UNIT"; then
    journal_tail
    # The exit status of --in-unit (1: nothing changed, 2: failed after SIGQUIT), read before the
    # drop-in goes away with its ExecReload= record.
    in_unit_status=$(systemctl show --property=ExecReload --value "$UNIT" | grep -o 'status=[0-9]*' | tail -n 1 | cut -d= -f2)
    cleanup
    trap - EXIT
    if [[ $in_unit_status == 1 ]] && systemctl is-active --quiet "$UNIT"; then
      die "the upgrade was refused before the hand-over (see above); $UNIT still runs PID $old" 1
    fi
    die "the upgrade failed (in-unit status ${in_unit_status:-unknown}); see journalctl -u $UNIT -n 50 and systemctl status $UNIT, and start it again if it is down" 2
  fi
  cleanup
  trap - EXIT
  new=$(systemctl show --property=MainPID --value "$UNIT")
  [[ $new =~ ^[1-9][0-9]*$ && $new != "$old" ]] || die "$UNIT main PID is '$new' after the reload; see systemctl status $UNIT" 2
  say "new main PID $new; waiting up to ${TIMEOUT}s for PID $old to finish draining"
  deadline=$(($(now_ms) + TIMEOUT * 1000))
  while alive "$old" && (($(now_ms) < deadline)); do sleep 0.5; done
  if alive "$old"; then
    say "PID $old is still draining after ${TIMEOUT}s; it exits by itself after server.grace_period"
    exit 3
  fi
  systemctl is-active --quiet "$UNIT" || die "$UNIT is not active after the upgrade; see systemctl status $UNIT" 2
  say "done: $UNIT runs PID $new; PID $old has exited"
  exit 0
fi

# --- plain and --in-unit: the hand-over itself ----------------------------------------------------
[[ -x $BIN ]] || die "$BIN is not an executable file (give --bin)"
[[ -r $CONF ]] || die "cannot read $CONF (give --config)"
CONF=$(cd "$(dirname "$CONF")" && pwd)/$(basename "$CONF")
if [[ -z $PID_FILE ]]; then
  PID_FILE=$(server_setting pid_file "$CONF")
  PID_FILE=${PID_FILE:-/tmp/mcpgate.pid}
fi
if [[ -z $SOCK ]]; then
  SOCK=$(server_setting upgrade_sock "$CONF")
  SOCK=${SOCK:-/tmp/mcpgate_upgrade.sock}
fi
[[ $PID_FILE != *'${'* && $SOCK != *'${'* ]] || die "the config sets pid_file or upgrade_sock from the environment; give --pid-file and --upgrade-sock"
say "config $CONF, pid file $PID_FILE, upgrade socket $SOCK"

[[ -e $PID_FILE ]] || die "no pid file at $PID_FILE (is the gateway running with -d? give --pid-file)"
old=$(read_pid "$PID_FILE") || die "$PID_FILE does not hold a pid"
if [[ $MODE == in-unit && -n ${MAINPID:-} && $MAINPID != "$old" ]]; then
  die "the unit's main PID is $MAINPID but $PID_FILE names $old; not touching either"
fi
is_mcpgate "$old" || die "PID $old (from $PID_FILE) is not a running mcpgate; a stale pid file? Start the gateway instead"

# The new process is started with the environment and output of the old one.
env_cmd=(env)
if [[ $MODE == plain ]]; then
  owner=$(stat -c %u "/proc/$old")
  ((owner == EUID)) || die "PID $old runs as uid $owner, this script as uid $EUID: run it as the gateway's user (e.g. sudo -u '#$owner' $0 ...), so the new process runs as that user too"
  if ((KEEP_ENV == 0)); then
    [[ -r /proc/$old/environ ]] || die "cannot read /proc/$old/environ (give --keep-env to use this shell's environment)"
    mapfile -d '' old_env <"/proc/$old/environ"
    env_cmd=(env -i "${old_env[@]}")
  fi
  if [[ -z $LOG ]]; then
    for fd in 1 2; do
      target=$(readlink "/proc/$old/fd/$fd" 2>/dev/null || true)
      case $target in
        /dev/null | /dev/pts/* | /dev/tty*) ;;
        /*) [[ $target != *' (deleted)' && -f $target ]] || target= ;;
        *) target= ;;
      esac
      [[ -n $target ]] || die "PID $old writes its fd $fd to '$(readlink "/proc/$old/fd/$fd" 2>/dev/null || echo unknown)', which cannot be reopened; give --log FILE (or --log /dev/null)"
      if ((fd == 1)); then out_target=$target; else err_target=$target; fi
    done
  else
    out_target=$LOG
    err_target=$LOG
  fi
fi

if [[ -e $SOCK ]]; then
  die "$SOCK exists: another upgrade is waiting for the sockets, or one crashed. If no 'mcpgate -u' runs, remove it and try again"
fi

say "old PID $old; checking the config with the new binary: $BIN ($(version_of "$BIN"))"
if ! out=$("${env_cmd[@]}" "$BIN" -t -c "$CONF" 2>&1); then
  printf '%s\n' "$out" >&2
  die "the new binary refuses $CONF; nothing was changed"
fi

started=$(now_ms)
if [[ $MODE == plain ]]; then
  "${env_cmd[@]}" "$BIN" -u -d -c "$CONF" </dev/null >>"$out_target" 2>>"$err_target" &
else
  "${env_cmd[@]}" "$BIN" -u -d -c "$CONF" </dev/null &
fi
starter=$!
say "started the new binary (PID $starter), waiting for it to listen on $SOCK"

deadline=$(($(now_ms) + SOCK_WAIT * 1000))
until [[ -S $SOCK ]]; do
  if ! alive "$starter"; then
    rc=0
    wait "$starter" || rc=$?
    die "the new process exited (status $rc) before listening on $SOCK; nothing was changed${err_target:+ (its output: $err_target)}"
  fi
  if (($(now_ms) >= deadline)); then
    kill "$starter" 2>/dev/null || true
    wait "$starter" 2>/dev/null || true
    die "the new process did not listen on $SOCK within ${SOCK_WAIT}s (is server.upgrade_sock $SOCK? give --upgrade-sock); it was stopped, nothing was changed"
  fi
  sleep 0.1
done

say "sending SIGQUIT to PID $old (it hands its listening sockets over, then drains)"
kill -QUIT "$old"

# The new process's foreground part exits 0 once it holds the sockets and has daemonized.
deadline=$(($(now_ms) + HANDOVER_WAIT * 1000))
while alive "$starter" && (($(now_ms) < deadline)); do sleep 0.1; done
if alive "$starter"; then
  die "the new process has not finished taking the sockets over after ${HANDOVER_WAIT}s; PID $starter still runs, PID $old drains; check both" 2
fi
rc=0
wait "$starter" || rc=$?
if ((rc != 0)); then
  die "the hand-over failed (the new process exited with status $rc); PID $old stops accepting after SIGQUIT: start the gateway again${err_target:+ (output: $err_target)}" 2
fi

deadline=$(($(now_ms) + PIDFILE_WAIT * 1000))
new=
while (($(now_ms) < deadline)); do
  if p=$(read_pid "$PID_FILE") && [[ $p != "$old" ]] && is_mcpgate "$p"; then
    new=$p
    break
  fi
  sleep 0.1
done
[[ -n $new ]] || die "the new process took the sockets over but $PID_FILE does not name a live new mcpgate after ${PIDFILE_WAIT}s" 2
say "new PID $new holds the sockets ($(($(now_ms) - started)) ms after start)"

if [[ $MODE == in-unit ]]; then
  # systemd reads the pid file when this ExecReload= ends and follows the new main PID; the old
  # process drains in the unit's cgroup and --systemd waits for it.
  exit 0
fi

say "waiting up to ${TIMEOUT}s for PID $old to finish draining"
deadline=$(($(now_ms) + TIMEOUT * 1000))
while alive "$old" && (($(now_ms) < deadline)); do sleep 0.2; done
if alive "$old"; then
  say "PID $old is still draining after ${TIMEOUT}s; it exits by itself after server.grace_period"
  exit 3
fi
say "done: PID $new serves; PID $old exited $(($(now_ms) - started)) ms after the upgrade started"
