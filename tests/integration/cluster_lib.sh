# Helpers shared by the real-cluster tests (real_ssh_test.sh, real_slurm_test.sh): skip,
# the root and network-namespace checks, fail, wait_until. Sourced after the caller sets
# PREFIX (its namespace prefix) and WORK (its scratch directory, whose *.log and *.out
# files fail shows); a caller may define fail_details to print more (e.g. the queue).

# Ends the test as skipped (ctest: exit 77).
skip() { echo "SKIP: $*"; exit 77; }

# Skips unless running as root and able to create a network namespace; $1 says what root
# is needed for.
require_root_and_netns() {
  [ "$(id -u)" -eq 0 ] || skip "needs root ($1)"
  ip netns add "$PREFIX-probe" 2>/dev/null || skip "cannot create network namespaces here"
  ip netns del "$PREFIX-probe"
}

# Fails the test with message $*, showing the tail of each log first.
fail() {
  echo "FAIL: $*" >&2
  if declare -F fail_details >/dev/null; then fail_details >&2 || true; fi
  for f in "$WORK"/*.log "$WORK"/*.out; do
    [ -e "$f" ] && { echo "--- $f" >&2; tail -25 "$f" >&2; }
  done
  echo "FAIL: $*" >&2
  exit 1
}

# Waits up to $2 seconds for command $1 (a string) to succeed: an event, not a sleep.
wait_until() {
  local deadline=$((SECONDS + $2))
  until eval "$1"; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for: $1"
    sleep 0.05
  done
}
