"""What a driver shows on the terminal: `[k/N]` progress with an ETA, and an OSError (a result
that cannot be written or read) as one line and exit 1 instead of a traceback."""
import errno
import math
import sys
import time


class Progress:
    """`[i/n] name: detail (elapsed mm:ss, ETA mm:ss)` lines, the ETA from the mean time so far."""

    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.time()

    def start(self, name, detail=""):
        elapsed = time.time() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        print(f"[{self.done + 1}/{self.total}] {name}{': ' + detail if detail else ''} "
              f"(elapsed {clock(elapsed)}, ETA {'?' if math.isnan(eta) else clock(eta)})", flush=True)
        self.done += 1

    def elapsed(self):
        return time.time() - self.started


def clock(seconds):
    return time.strftime("%M:%S", time.gmtime(seconds)) if seconds < 3600 else f"{seconds / 3600:.1f} h"


def failure_line(program, error):
    """The one line an OSError becomes: the file, the system's reason, and for a full disk
    (the usual cause of a failed write of results) what to do."""
    line = f"{program}: error: " + (f"{error.filename}: {error.strerror}" if error.filename else str(error))
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        line += ("; the disk is full: free space there or choose another --out, then run again with --reuse "
                 "(runs that finished are kept)")
    return line


def exit_code_of_main(program, main):
    """main()'s exit code; an OSError (a result that cannot be written, a file that cannot be
    read) is one line on stderr and exit 1, not a traceback."""
    try:
        return main()
    except OSError as e:
        print(failure_line(program, e), file=sys.stderr, flush=True)
        return 1
