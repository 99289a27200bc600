#!/usr/bin/env bash
# Runs scripts/slurm/fanout.sbatch as a one-node allocation, with stand-ins for scontrol,
# srun and sbcast that act on this machine (Slurm itself is not installed here): keys are
# made, files broadcast, a CURVE worker joins over TCP and the job's output is right.
# Usage: slurm_test.sh FANOUT_BIN_DIR
set -euo pipefail
BIN_DIR="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/shims"
cat >"$WORK/shims/scontrol" <<'SH'
#!/bin/sh
echo localhost
SH
cat >"$WORK/shims/srun" <<'SH'
#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done
exec "$@"
SH
cat >"$WORK/shims/sbcast" <<'SH'
#!/bin/sh
[ "$1" = --force ] && shift
exec cp "$1" "$2"
SH
chmod +x "$WORK/shims/"*
cd "$WORK"
seq 1 300 >in.txt
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
PATH="$WORK/shims:$PATH" SLURM_JOB_NODELIST=localhost SLURM_JOB_ID=$$ SLURM_JOB_NUM_NODES=1 \
  SLURM_CPUS_PER_TASK=2 FANOUT_BIN_DIR="$BIN_DIR" FANOUT_PORT="$PORT" \
  bash "$HERE/../../scripts/slurm/fanout.sbatch" -i in.txt -o out.txt --chunks 6 identity
cmp in.txt out.txt
[ ! -e "/tmp/fanout-$$" ] || { echo "FAIL: node directory left behind"; exit 1; }
echo "PASS: fanout.sbatch ran a CURVE job on a one-node stand-in allocation"
