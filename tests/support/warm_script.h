// A warm command for tests, written from scratch against WARM_PROTOCOL.md (not with the
// shipped helper), shared by the unit and integration tests of `exec --warm`.
#pragma once

namespace fanout::testing {

// The warm protocol from scratch (WARM_PROTOCOL.md), uppercasing each chunk. Each start
// appends "PID FANOUT_WORKER" to $WARM_DIR/starts. On chunk 2,
// attempt 1, WARM_FAULT picks a fault: kill/hang (write `pid`, then sleep), broken (a
// garbage frame), err (an ERR frame), exit (status 3 with a line on stderr).
constexpr const char* kWarmUpperScript = R"(import os, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
fault, d = os.environ.get("WARM_FAULT", ""), os.environ["WARM_DIR"]
with open(d + "/starts", "a") as f:
    f.write("%d %s\n" % (os.getpid(), os.environ.get("FANOUT_WORKER", "")))
out.write(b"READY 1\n"); out.flush()
while True:
    line = inp.readline()
    if not line:
        break
    _, chunk, attempt, n = line.split()
    data = inp.read(int(n))
    if int(chunk) == 2 and int(attempt) == 1 and fault:
        if fault in ("kill", "hang"):
            with open(d + "/pid.tmp", "w") as f:
                f.write("%d\n" % os.getpid())
            os.rename(d + "/pid.tmp", d + "/pid")
            time.sleep(3600)
        if fault == "broken":
            out.write(b"garbage\n"); out.flush(); continue
        if fault == "err":
            out.write(b"ERR 15\nchunk 2 refuses"); out.flush(); continue
        if fault == "exit":
            sys.stderr.write("dying on chunk 2\n"); sys.exit(3)
    result = data.upper()
    out.write(b"OK %d\n" % len(result) + result); out.flush()
)";

}  // namespace fanout::testing
