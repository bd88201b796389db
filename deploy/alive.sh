# Sourced by deploy/local-stack.sh and deploy/services.sh.
# alive PID: the process exists and is not a zombie (a killed process its parent has not reaped
# yet still passes `kill -0`, and would be taken for a running one).
# alive PID WHAT: and its command line contains WHAT (a pid file that outlived a reboot may name
# another process by now, which must neither be taken for ours nor be signalled).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state="$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
  [ "$state" != Z ] || return 1
  [ -z "${2:-}" ] || tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}
