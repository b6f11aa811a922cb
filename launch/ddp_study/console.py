"""What a driver shows on the terminal: `[k/N]` progress with an ETA, an OSError (a result that
cannot be written or read) as one line and exit 1, and Ctrl-C (or SIGTERM) as one line and exit 130,
instead of a traceback."""
import errno
import math
import signal
import sys
import time


class Progress:
    """`[i/n] name: detail (elapsed mm:ss, ETA mm:ss)` lines, the ETA from the mean time so far.
    With runs at once the line also counts them (`2 in flight`), and the ETA comes from the runs
    finished so far: the time a run takes on average, divided by how many run at once."""

    def __init__(self, total):
        self.total, self.done, self.started = total, 0, time.time()

    def start(self, name, detail="", in_flight=0):
        """in_flight: runs started before this one and still going (0 when one runs at a time)."""
        finished = self.done - in_flight
        print(f"[{self.done + 1}/{self.total}] {name}{': ' + detail if detail else ''} "
              f"({f'{in_flight + 1} in flight, ' if in_flight else ''}{self.times(finished)})", flush=True)
        self.done += 1

    def finish(self, name, detail=""):
        """A run that ended where a scheduler started it (Slurm): `[k/n] name: detail`, k counting ends."""
        self.done += 1
        print(f"[{self.done}/{self.total}] {name}{': ' + detail if detail else ''} ({self.times(self.done)})",
              flush=True)

    def state(self, detail):
        """The runs a scheduler holds (`3 running, 5 pending`), after `[ended/n]`."""
        print(f"[{self.done}/{self.total}] {detail} ({self.times(self.done)})", flush=True)

    def times(self, finished):
        elapsed = time.time() - self.started
        eta = elapsed / finished * (self.total - finished) if finished else float("nan")
        return f"elapsed {clock(elapsed)}, ETA {'?' if math.isnan(eta) else clock(eta)}"

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


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def exit_code_of_main(program, main):
    """main()'s exit code; an OSError (a result that cannot be written, a file that cannot be
    read) is one line on stderr and exit 1, not a traceback. SIGTERM (kill, timeout, Slurm) stops it
    as Ctrl-C does (its runs stopped, a local cluster it started taken down; SIGTERM's default ended it
    at once and left both), and so does SIGINT where it came in ignored: a shell without job control
    starts `driver &` so."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    if handlers[signal.SIGINT] == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return main()
    except OSError as e:
        print(failure_line(program, e), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted; the runs that finished are kept: the same command with --reuse continues",
              file=sys.stderr, flush=True)
        return 130
    finally:  # a caller in the same process (a test) keeps its own
        for signum, handler in handlers.items():
            if handler is not None:  # None: set outside Python, not restorable from it
                signal.signal(signum, handler)
