"""Runs one floe operation and reports how it ended; test_interrupt.py runs it
in a subprocess and interrupts it with SIGINT (Ctrl-C).

usage: interrupt_child.py OP SRC DST MODE
  OP    export | import | verify | reader-verify
  MODE  callback  a progress callback sends SIGINT to this process on its first call
        internal  no callback; floe's own (internal) callback sends SIGINT on its first call
        external  no callback; the parent sends SIGINT

Prints "interrupted CAUSE SECONDS" (KeyboardInterrupt raised, CAUSE the type of
its __cause__, SECONDS from SIGINT to the exception) and exits 3, or
"completed" and exits 0.
"""

import os
import signal
import sys
import time

import floe

op, src, dst, mode = sys.argv[1:5]
sent = []


def interrupt_once():
    if not sent:
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)
        # The signal is handled by the main thread, which is waiting for this
        # worker; give it time to notice, so that the run does not finish first.
        time.sleep(0.5)


progress = None
if mode == "callback":

    def progress(p):
        interrupt_once()

elif mode == "internal":
    original = floe._Bridge._call

    def patched(self, user_data, p):
        assert self.fn is None
        interrupt_once()
        return original(self, user_data, p)

    floe._Bridge._call = patched

print("start", flush=True)
try:
    if op == "export":
        floe.export(src, dst, progress=progress, threads=1, level=19, block_size=1 << 20)
    elif op == "import":
        floe.import_archive(src, dst, progress=progress, threads=1)
    elif op == "verify":
        floe.verify(src, progress=progress, threads=1)
    elif op == "reader-verify":
        with floe.Reader(src) as r:
            r.verify(progress=progress, threads=1)
    else:
        raise SystemExit(f"unknown op {op}")
except KeyboardInterrupt as e:
    took = time.monotonic() - sent[0] if sent else -1.0
    print("interrupted", type(e.__cause__).__name__, f"{took:.3f}", flush=True)
    sys.exit(3)
print("completed", flush=True)
