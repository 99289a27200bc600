#!/usr/bin/env bash
# `fanout server` across hosts in network namespaces (issue #19): a server host, three
# worker hosts and two client hosts on a bridge, CURVE on both of the server's endpoints
# (worker keys and client keys in separate directories). Two clients on two hosts submit a
# job each at once; one worker host's link goes down mid-job. Both outputs must equal the
# serial run, and the server must have lost (and re-dispatched the chunks of) that worker.
#
# Usage: server_netns_test.sh FANOUT FANOUT_WORKER. Exits 77 (ctest: skipped) without the
# privileges to make namespaces; CI runs as root, so there it runs.
set -euo pipefail
FANOUT="$1"
WORKER="$2"
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/../../scripts/lib/netns.sh"
PREFIX="fs$$"
WORK="$(mktemp -d)"
source "$HERE/cluster_lib.sh"  # skip, require_root_and_netns, fail, wait_until
cleanup() {
  jobs -p | xargs -r kill -9 2>/dev/null || true
  netns_lab_down "$PREFIX"
  rm -rf "$WORK"
}
trap cleanup EXIT
require_root_and_netns "network namespaces"
# Hosts: c is the server, w1-w3 run workers, w4 and w5 run clients.
netns_lab_up "$PREFIX" 5

cd "$WORK"
mkdir workers clients
"$FANOUT" keygen server >/dev/null
for w in w1 w2 w3; do
  "$FANOUT" keygen "$w" >/dev/null
  cp "$w" workers/
done
for c in c1 c2; do
  "$FANOUT" keygen "$c" >/dev/null
  cp "$c" clients/
done
seq 1 120 | sed 's/^/row /' >in1.txt
seq 1 90 | sed 's/^/line /' >in2.txt
"$FANOUT" run -q --mode serial -i in1.txt -o serial1.txt sleep 0
"$FANOUT" run -q --mode serial -i in2.txt -o serial2.txt exec -- tr a-z A-Z

SERVER="$(netns_node_addr c)"
ip netns exec "$PREFIX-c" "$FANOUT" server --listen "tcp://0.0.0.0:7100" \
  --workers-listen "tcp://0.0.0.0:7101" -j 0 --state state --curve-secret server_secret \
  --client-keys clients --authorized-keys workers --worker-bin "$WORKER" 2>server.log &
wait_until 'grep -q listening server.log' 30
for w in w1 w2 w3; do
  ip netns exec "$PREFIX-$w" "$WORKER" --connect "tcp://$SERVER:7101" --name "$w" \
    --curve-server-key server --curve-secret "${w}_secret" --log-level debug 2>"$w.log" &
done

client() {  # N HOST JOB...: client N submits from HOST and waits for its output
  local n="$1" host="$2"
  shift 2
  ip netns exec "$PREFIX-$host" "$FANOUT" run --server "tcp://$SERVER:7100" \
    --server-key server --client-secret "c${n}_secret" -i "in$n.txt" -o "out$n.txt" "$@" \
    2>"client$n.log"
}

client 1 w4 --chunks 60 sleep 40 &
C1=$!
client 2 w5 --chunks 30 exec -- sh -c 'sleep 0.1; tr a-z A-Z' &
C2=$!
wait_until 'grep -q "attempt 1: started" w2.log' 60
netns_link "$PREFIX" w2 down
wait "$C1" || fail "client 1 exited $?"
wait "$C2" || fail "client 2 exited $?"
cmp -s serial1.txt out1.txt || fail "job 1 output differs from serial"
cmp -s serial2.txt out2.txt || fail "job 2 output differs from serial"
grep -q "worker w2 lost" server.log || fail "the server did not report w2 lost"
# A big input and output (12 MB each way) travel between hosts in 4 MiB parts, over CURVE.
seq 1 1500000 | sed 's/^/big /' >in1.txt
client 1 w4 --chunks 8 identity || fail "the big job exited $?"
cmp -s in1.txt out1.txt || fail "the big job's output differs from its input"
echo "PASS: server host, 3 worker hosts, 2 client hosts; w2's partition survived by both jobs; 12 MB each way in parts"
