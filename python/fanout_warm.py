"""Serve fanout chunks from one long-lived Python process: `fanout run ... exec --warm -- python3 my.py`.

fanout starts the script once per worker slot and sends it chunk after chunk over the warm
framing (common/WARM_PROTOCOL.md); imports and set-up are paid once, not per chunk. Standard
library only; `serve_dataframe` needs pandas.

    import fanout_warm
    fanout_warm.serve_lines(lambda line: line.upper())

The same script also works without --warm (plain `exec`, a shell pipe, a test): when
FANOUT_WARM is not set it reads all of stdin as one chunk and writes the result to stdout.

Inside the handler, print() and anything else written to stdout (fd 1) goes to stderr, so
it cannot break the framing; fanout quotes the stderr of a failed chunk in its error. An
exception fails that chunk only (an ERR frame with the exception's text) and the process
serves the next one; a crash fails the chunk and fanout starts a fresh process.
"""

import io
import os
import sys
import traceback

__all__ = ["serve_bytes", "serve_lines", "serve_dataframe", "serve"]

PROTOCOL_VERSION = 1


def _error_text(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def serve(handle):
    """Serves chunks with handle(data: bytes, chunk: int, attempt: int) -> bytes until stdin ends."""
    inp = sys.stdin.buffer
    if os.environ.get("FANOUT_WARM") is None:  # cold: one chunk, the whole of stdin
        data = inp.read()
        sys.stdout.buffer.write(handle(data, 0, 1))
        sys.stdout.buffer.flush()
        return
    # The frames get a private copy of fd 1; fd 1 itself (print, C libraries) becomes stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    out.write(b"READY %d\n" % PROTOCOL_VERSION)
    out.flush()
    while True:
        line = inp.readline()
        if not line:
            return  # fanout closed our stdin: the job is over
        fields = line.split(b" ")
        if len(fields) != 4 or fields[0] != b"CHUNK" or not line.endswith(b"\n"):
            sys.exit("fanout_warm: bad request line %r" % line[:80])
        chunk, attempt, size = (int(f) for f in fields[1:])
        data = inp.read(size)
        if len(data) != size:
            return  # stdin ended mid-chunk: fanout is gone
        try:
            result = handle(data, chunk, attempt)
            if not isinstance(result, (bytes, bytearray, memoryview)):
                raise TypeError("the handler returned %s, not bytes" % type(result).__name__)
            out.write(b"OK %d\n" % len(result))
            out.write(result)
        except Exception as exc:  # the chunk fails; the process stays warm
            traceback.print_exc(file=sys.stderr)
            message = _error_text(exc).encode("utf-8", "replace")
            out.write(b"ERR %d\n" % len(message))
            out.write(message)
        out.flush()


def serve_bytes(fn):
    """Serves chunks with fn(data: bytes) -> bytes: the chunk's records in, its output out."""
    serve(lambda data, chunk, attempt: fn(data))


def serve_lines(fn):
    """Serves chunks line by line with fn(line: str) -> str or None (None drops the line).

    Lines are given without their '\\n' and each result gets one; bytes that are not UTF-8
    survive the round trip (surrogateescape). A last line without '\\n' stays without."""

    def handle(data, chunk, attempt):
        text = data.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        last_open = lines[-1] != ""
        if not last_open:
            lines.pop()
        out = []
        for i, line in enumerate(lines):
            result = fn(line)
            if result is None:
                continue
            out.append(result)
            if i + 1 < len(lines) or not last_open:
                out.append("\n")
        return "".join(out).encode("utf-8", "surrogateescape")

    serve(handle)


def serve_dataframe(fn, header=True, read_csv=None, to_csv=None):
    """Serves CSV chunks as pandas DataFrames: fn(df) -> DataFrame, written back as CSV.

    header=True is for `fanout run --header`: every chunk then starts with the input's
    header line, and every output starts with the result's header (fanout keeps the first
    and checks the others match). With header=False, chunks are bare rows in and out.
    read_csv / to_csv are extra keyword arguments for pandas.read_csv / DataFrame.to_csv
    (index=False by default). Give read_csv a `dtype=` when a column's type could be
    guessed differently per chunk (e.g. floats that happen to be whole), so that chunk
    outputs format exactly like one serial run."""
    import pandas as pd  # imported once, before READY

    read_kwargs = dict(read_csv or {})
    write_kwargs = {"index": False}
    write_kwargs.update(to_csv or {})

    def handle(data, chunk, attempt):
        if not data.strip():
            return b""
        df = pd.read_csv(io.BytesIO(data), header=0 if header else None, **read_kwargs)
        result = fn(df)
        return result.to_csv(header=header, **write_kwargs).encode("utf-8")

    serve(handle)


if __name__ == "__main__":  # a self-test filter: `exec --warm -- python3 fanout_warm.py`
    serve_bytes(lambda data: data)
