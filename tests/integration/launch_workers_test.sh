#!/usr/bin/env bash
# scripts/launch-workers starts a worker per host-file line (over a stand-in for ssh that
# runs the remote command on this machine), ships the CURVE certificates, runs the job
# given after --, and leaves no worker behind. Usage: launch_workers_test.sh FANOUT WORKER
set -euo pipefail
FANOUT="$1"
WORKER="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
fail() { echo "FAIL: $*" >&2; cat err 2>/dev/null >&2 || true; exit 1; }

mkdir auth
"$FANOUT" keygen server >/dev/null
"$FANOUT" keygen cluster >/dev/null
cp cluster auth/
seq 1 500 >in.txt
printf 'localhost 2\n# a comment\n\n127.0.0.1\n' >hosts
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
EP="tcp://127.0.0.1:$PORT"

FANOUT_SSH="$HERE/fake_ssh" "$HERE/../../scripts/launch-workers" hosts --connect "$EP" \
  --bin "$WORKER" --server-key server --secret cluster_secret -- \
  "$FANOUT" run --listen "$EP" --curve-secret server_secret --authorized-keys auth -j 0 \
  --min-workers 2 --wait-timeout 60s -i in.txt -o out.txt --stats-json s.json identity 2>err ||
  fail "job exited $?"
cmp -s in.txt out.txt || fail "output differs from input"
python3 - s.json <<'PY' || fail "unexpected workers: $(cat s.json)"
import json, sys
rows = {w["id"]: w for w in json.load(open(sys.argv[1]))["per_worker"]}
sys.exit(0 if sorted(rows) == ["127.0.0.1-2", "localhost-1"] else 1)
PY
if pgrep -f -- "--connect $EP" >/dev/null; then fail "workers still running after the script ended"; fi

# Bad host files and options are refused with exit 2.
printf 'host x\n' >bad
set +e
"$HERE/../../scripts/launch-workers" bad --connect "$EP" --insecure 2>msg; code=$?
set -e
[ "$code" = 2 ] && grep -q "bad slot count" msg || fail "bad slots: exit $code, $(cat msg)"
# A tcp:// endpoint without keys needs an explicit --insecure.
set +e
"$HERE/../../scripts/launch-workers" hosts --connect "$EP" 2>msg; code=$?
set -e
[ "$code" = 2 ] && grep -q -- "--insecure" msg || fail "keyless tcp: exit $code, $(cat msg)"
echo "PASS: launch-workers ran 2 hosts with CURVE and cleaned up"
