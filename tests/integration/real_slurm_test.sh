#!/usr/bin/env bash
# A real Slurm (22.05: munged, slurmctld, one slurmd per host) on three network-namespace
# hosts (issue #20). Each host has its own /tmp (no shared /tmp, as on a real cluster) and
# /etc/hosts; the controller and the submitting user sit on a fourth namespace host.
#  1. scripts/slurm/fanout.sbatch, submitted with sbatch across the 3 hosts: its output
#     equals the serial run.
#  2. A coordinator with one worker allocation per host (sbatch --wrap fanout-worker);
#     `scancel` of one allocation mid-job: its worker drains (its commands, which Slurm
#     signals too, are handed back), the job completes byte-identical, and nothing is
#     charged: no retry, no lost worker, one worker left.
# Everything started here (daemons, namespaces, files) is stopped and removed at the end,
# even on failure. Usage: real_slurm_test.sh FANOUT_BIN_DIR. Exits 77 (ctest: skipped)
# without root, network namespaces or Slurm (slurmctld slurmd slurm-client munge).
set -euo pipefail
BIN="$(cd "$1" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
source "$ROOT/scripts/lib/netns.sh"
source "$HERE/cluster_lib.sh"

PREFIX="fl$$"
HOSTS=(w1 w2 w3)
# Not under /tmp: each host gets its own /tmp.
WORK="$(mktemp -d /var/tmp/fanout-slurm.XXXXXX)"
cleanup() {
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -e "$SLURM_CONF" ]; then
    timeout 10 scancel --quiet --full "--user=$(id -un)" 2>/dev/null
  fi
  jobs -p | xargs -r kill -9 2>/dev/null
  [ -s "$WORK/munged.pid" ] && kill -9 "$(cat "$WORK/munged.pid")" 2>/dev/null
  netns_lab_down "$PREFIX"  # kills what still runs in the hosts (daemons, jobs)
  rm -rf "/etc/netns/$PREFIX-"*
  rm -rf "$WORK"
}
trap cleanup EXIT

require_root_and_netns "Slurm daemons and network namespaces"
for b in munged slurmctld slurmd sbatch scancel squeue unshare nsenter; do
  command -v "$b" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$b" >/dev/null ||
    skip "$b is not installed (apt-get install slurmctld slurmd slurm-client munge)"
done
export PATH="$PATH:/usr/sbin"
fail_details() { squeue -a 2>&1 | head -20; }

netns_lab_up "$PREFIX" 3 || fail "cannot build the namespace lab"
# Names: each namespace host sees the others by name (ip netns exec mounts these files).
for node in c "${HOSTS[@]}"; do
  mkdir -p "/etc/netns/$PREFIX-$node"
  {
    echo "127.0.0.1 localhost"
    echo "$(netns_node_addr c) ctl"
    for h in "${HOSTS[@]}"; do echo "$(netns_node_addr "$h") $h"; done
  } >"/etc/netns/$PREFIX-$node/hosts"
done
cd "$WORK"
mkdir state spool-w1 spool-w2 spool-w3
# One munged for all hosts: its socket is a path, which every namespace reaches.
dd if=/dev/urandom of=munge.key bs=1024 count=1 status=none
chmod 400 munge.key
munged --force --key-file="$WORK/munge.key" --socket="$WORK/munge.sock" \
  --pid-file="$WORK/munged.pid" --log-file="$WORK/munged.log" --seed-file="$WORK/munged.seed" ||
  fail "munged did not start"
export SLURM_CONF="$WORK/slurm.conf"
PORT_BASE=$((17000 + $$ % 1000 * 2))
cat >slurm.conf <<EOF
ClusterName=fanouttest
SlurmctldHost=ctl($(netns_node_addr c))
SlurmctldPort=$PORT_BASE
SlurmdPort=$((PORT_BASE + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge.sock
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool-%n
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd-%n.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
KillWait=30
MailProg=/bin/true
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=w1 NodeAddr=$(netns_node_addr w1) CPUs=2 State=UNKNOWN
NodeName=w2 NodeAddr=$(netns_node_addr w2) CPUs=2 State=UNKNOWN
NodeName=w3 NodeAddr=$(netns_node_addr w3) CPUs=2 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# Each daemon runs on its host with that host's name, /etc/hosts and a private /tmp.
# (nsenter, not `ip netns exec`, which would mount a fresh /sys without the cgroup file
# systems slurmd needs.)
# A checkout under /tmp (e.g. CI's /tmp/fanout-ci) would vanish under the private /tmp:
# it is bound to a holding place outside /tmp first, then back to its own path.
KEEP=""
case "$ROOT/" in /tmp/*) KEEP="$ROOT" ;; esac
mkdir -p "$WORK/keep"
on_host() {  # NODE NAME COMMAND...
  local node="$1" name="$2"
  shift 2
  nsenter --net="/run/netns/$PREFIX-$node" unshare --mount --uts --propagation private sh -c '
    if [ -n "$3" ]; then mount --bind "$3" "$4"; fi &&
    mount -t tmpfs -o mode=1777 tmpfs /tmp && hostname "$2" &&
    if [ -n "$3" ]; then mkdir -p "$3" && mount --bind "$4" "$3"; fi &&
    mount --bind "$1" /etc/hosts && shift 4 && exec "$@"' \
    on_host "/etc/netns/$PREFIX-$node/hosts" "$name" "$KEEP" "$WORK/keep" "$@"
}
# The daemons stop with their namespaces (cleanup).
on_host c ctl slurmctld -D -i -f "$SLURM_CONF" 2>slurmctld.err &
disown
for h in "${HOSTS[@]}"; do
  on_host "$h" "$h" slurmd -D -N "$h" -f "$SLURM_CONF" 2>"slurmd-$h.err" &
  disown
done
in_c() { ip netns exec "$PREFIX-c" "$@"; }
wait_until "[ \"\$(in_c sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)\" -eq 3 ]" 40

seq 1 600 | sed 's/^/row /' >in.txt
COMMAND=(sh -c 'sleep 0.1; cat')
"$BIN/fanout" run -q --mode serial -i in.txt -o serial.txt exec -- "${COMMAND[@]}"

# 1. fanout.sbatch across the 3 hosts.
start=$SECONDS
JOB="$(in_c env FANOUT_BIN_DIR="$BIN" sbatch --parsable --nodes=3 --cpus-per-task=2 \
  --output="$WORK/sbatch.out" "$ROOT/scripts/slurm/fanout.sbatch" \
  -i in.txt -o out.txt --chunks 60 --stats-json s.json exec -- "${COMMAND[@]}")" ||
  fail "sbatch refused the job"
wait_until "! in_c squeue -h -j $JOB 2>/dev/null | grep -q ." 60
cmp -s serial.txt out.txt || fail "fanout.sbatch: output differs from the serial run"
python3 - s.json <<'PY' || fail "fanout.sbatch: not every host served: $(cat s.json)"
import json, sys
rows = json.load(open(sys.argv[1]))["per_worker"]
sys.exit(0 if len(rows) == 3 and all(w["chunks"] > 0 for w in rows) else 1)
PY
echo "fanout.sbatch across 3 hosts: byte-identical ($((SECONDS - start)) s)"

# 2. One worker allocation per host; one is cancelled mid-job.
start=$SECONDS
EP="tcp://$(netns_node_addr c):7000"
in_c "$BIN/fanout" run --listen "tcp://0.0.0.0:7000" --insecure -j 0 --min-workers 3 \
  --wait-timeout 60s -i in.txt -o out2.txt --chunks 60 --stats-json s2.json \
  exec -- sh -c 'echo "$FANOUT_WORKER" >>'"$WORK"'/started; sleep 0.3; cat' 2>coordinator.log &
COORD=$!
declare -A ALLOC
for h in "${HOSTS[@]}"; do
  ALLOC[$h]="$(in_c sbatch --parsable -w "$h" --cpus-per-task=2 --output="$WORK/worker-$h.out" \
    --wrap "exec $BIN/fanout-worker --connect $EP --insecure --once --slots 2 --name $h \
--log-level info")" || fail "sbatch refused the worker allocation on $h"
done
# w3 has started attempts (running and queued ones): cancel its allocation.
wait_until "grep -qx w3 started 2>/dev/null" 60
in_c scancel "${ALLOC[w3]}"
wait "$COORD" || fail "the job with a cancelled worker allocation exited $?"
cmp -s serial.txt out2.txt || fail "scancel: output differs from the serial run"
python3 - s2.json <<'PY' || fail "scancel: chunks were charged or w3 was not left: $(cat s2.json)"
import json, sys
s = json.load(open(sys.argv[1]))
left = {w["id"]: w["left"] for w in s["per_worker"]}
ok = (s["retries"] == 0 and s["workers_lost"] == 0 and s["workers_left"] == 1
      and not s["failed_chunks"] and left.get("w3") is True
      and all(w["failures"] == 0 for w in s["per_worker"]))
sys.exit(0 if ok else 1)
PY
grep -q "draining" worker-w3.out || fail "w3 did not drain"
sed 's/^/  w3: /' worker-w3.out
wait_until "! in_c squeue -h 2>/dev/null | grep -q ." 30
echo "scancel of one worker allocation: drained, byte-identical, nothing charged ($((SECONDS - start)) s)"
echo "PASS: real Slurm on 3 namespace hosts"
