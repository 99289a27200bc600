#!/usr/bin/env bash
# scripts/launch-workers over a real OpenSSH (issue #20): a coordinator host and two worker
# hosts in network namespaces (198.18.0.0/15), each worker host running its own sshd with
# keys made for this test. The job, with CURVE certificates shipped over ssh, must equal
# the serial run; then the launcher is killed with SIGKILL and no worker may be left on
# either host. Everything started here (sshd, namespaces, keys) goes at the end, even on
# failure.
#
# Usage: real_ssh_test.sh FANOUT FANOUT_WORKER. Exits 77 (ctest: skipped) without root,
# network namespaces or OpenSSH (openssh-server, openssh-client).
set -euo pipefail
FANOUT="$1"
WORKER="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/../.."
source "$ROOT/scripts/lib/netns.sh"
source "$HERE/cluster_lib.sh"

SSHD=/usr/sbin/sshd
PREFIX="fs$$"
WORK="$(mktemp -d)"
MADE_RUN_SSHD=""
cleanup() {
  jobs -p | xargs -r kill -9 2>/dev/null || true
  netns_lab_down "$PREFIX"  # kills what still runs in the hosts (sshd, workers)
  [ -z "$MADE_RUN_SSHD" ] || rmdir /run/sshd 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

require_root_and_netns "sshd and network namespaces"
if ! [ -x "$SSHD" ] || ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
  skip "OpenSSH is not installed (apt-get install openssh-server openssh-client)"
fi
# Whether a fanout-worker runs in host namespace $1.
worker_on() {
  ip netns pids "$PREFIX-$1" | xargs -r ps -o comm= -p 2>/dev/null | grep -qx fanout-worker
}

netns_lab_up "$PREFIX" 2 || fail "cannot build the namespace lab"
cd "$WORK"
# sshd needs its privilege separation directory.
if [ ! -d /run/sshd ]; then mkdir -m 0755 /run/sshd && MADE_RUN_SSHD=1; fi
ssh-keygen -q -t ed25519 -N '' -f host_key
ssh-keygen -q -t ed25519 -N '' -f client_key
cp client_key.pub authorized_keys
: >known_hosts
for w in w1 w2; do
  addr="$(netns_node_addr "$w")"
  echo "$addr $(cut -d' ' -f1,2 host_key.pub)" >>known_hosts
  cat >"sshd_$w.conf" <<EOF
ListenAddress $addr
HostKey $WORK/host_key
AuthorizedKeysFile $WORK/authorized_keys
PidFile $WORK/sshd_$w.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
  ip netns exec "$PREFIX-$w" "$SSHD" -D -e -f "$WORK/sshd_$w.conf" 2>"sshd_$w.log" &
  disown  # stopped with its namespace (cleanup)
done
export FANOUT_SSH="ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i $WORK/client_key \
-o UserKnownHostsFile=$WORK/known_hosts -o StrictHostKeyChecking=yes -o ConnectTimeout=10"
for w in w1 w2; do  # sshd is up when it answers
  wait_until "ip netns exec $PREFIX-c $FANOUT_SSH $(netns_node_addr "$w") true 2>/dev/null" 20
done

mkdir auth
"$FANOUT" keygen coordinator >/dev/null
"$FANOUT" keygen cluster >/dev/null
cp cluster auth/
seq 1 400 | sed 's/^/row /' >in.txt
COMMAND=(sh -c 'sleep 0.05; cat')
"$FANOUT" run -q --mode serial -i in.txt -o serial.txt exec -- "${COMMAND[@]}"
printf '%s 2\n%s 2\n' "$(netns_node_addr w1)" "$(netns_node_addr w2)" >hosts
EP="tcp://$(netns_node_addr c):7000"

ip netns exec "$PREFIX-c" "$ROOT/scripts/launch-workers" hosts --connect "$EP" --bin "$WORKER" \
  --server-key coordinator --secret cluster_secret --once -- \
  "$FANOUT" run --listen "$EP" --curve-secret coordinator_secret --authorized-keys auth -j 0 \
  --min-workers 2 --wait-timeout 30s -i in.txt -o out.txt --chunks 40 --stats-json s.json \
  exec -- "${COMMAND[@]}" 2>job.log || fail "the job exited $?"
cmp -s serial.txt out.txt || fail "output differs from the serial run"
python3 - s.json <<'PY' || fail "not both hosts served the job: $(cat s.json)"
import json, sys
rows = {w["id"]: w["chunks"] for w in json.load(open(sys.argv[1]))["per_worker"]}
sys.exit(0 if sorted(rows) == ["198.18.0.11-1", "198.18.0.12-2"] and min(rows.values()) > 0 else 1)
PY
for w in w1 w2; do ! worker_on "$w" || fail "a worker outlived the job on $w"; done

# Workers kept up (no job, no --once), then the launcher is killed: both go.
ip netns exec "$PREFIX-c" "$ROOT/scripts/launch-workers" hosts --connect "$EP" --bin "$WORKER" \
  --insecure 2>launcher.log &
LAUNCHER=$!
wait_until "worker_on w1 && worker_on w2" 20
kill -9 "$LAUNCHER"
wait "$LAUNCHER" 2>/dev/null || true
wait_until "! worker_on w1 && ! worker_on w2" 20
echo "PASS: launch-workers over real ssh to 2 hosts: byte-identical; no worker outlived the launcher"
