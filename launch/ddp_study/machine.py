"""What else this machine is doing while a benchmark measures it: the cores other processes keep busy,
read from /proc (Linux). A bench taken while a build, a test or a run left behind holds a core measures
a slower machine than the runs it prices will find, and nothing in its figures says so: the planner
waits a while for such a machine to quiet, and records what it saw beside its figures (as pyperf
warns of an unstable result, and Shopify's yjit-metrics records the load averages around its runs)."""
import os
import threading
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_CORES = 0.25  # other processes keeping fewer cores busy leave a bench's figures as an idle machine's


def cpu_ticks(line):
    """(busy, steal) ticks of /proc/stat's `cpu` line: user, nice, system, irq and softirq are busy (guest
    time is already inside user and nice); steal, time the hypervisor gave to other machines, is kept apart:
    no process here caused it."""
    fields = [int(x) for x in line.split()[1:]]
    fields += [0] * (8 - len(fields))
    return sum(fields[0:3]) + fields[5] + fields[6], fields[7]


def process_ticks(text):
    """(name, user + system ticks) of a /proc/PID/stat text; the name, in parentheses, may hold spaces and
    parentheses itself, so it ends at the last one."""
    name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
    return name, int(rest[11]) + int(rest[12])  # utime, stime: the stat's fields 14 and 15


def _cpu_now():
    with open("/proc/stat") as f:
        return cpu_ticks(f.readline())


def _processes_now():
    """{pid: (name, ticks)} of every process readable now, but this one (asleep while it samples)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                found[int(pid)] = process_ticks(f.read())
        except (OSError, ValueError, IndexError):  # it ended between the listing and the read
            continue
    found.pop(os.getpid(), None)
    return found


def sample(seconds=1.0, top=3):
    """The cores kept busy over the next `seconds` while this process sleeps (so: by others), the busiest
    processes then (those started meanwhile too), and the load averages, as a dict for bench.json."""
    before = _processes_now()
    (busy0, steal0), start = _cpu_now(), time.monotonic()  # after the scan of /proc: it is not counted
    time.sleep(seconds)
    (busy1, steal1), elapsed = _cpu_now(), time.monotonic() - start
    after = _processes_now()
    used = [(ticks - before.get(pid, (name, 0))[1], pid, name) for pid, (name, ticks) in after.items()]
    busiest = [{"pid": pid, "name": name, "cores": round(t / CLOCK_TICKS / elapsed, 2)}
               for t, pid, name in sorted(used, reverse=True)[:top] if t > 0]
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    return {"at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "busy_cores": round((busy1 - busy0) / CLOCK_TICKS / elapsed, 2),
            "steal_cores": round((steal1 - steal0) / CLOCK_TICKS / elapsed, 2), "cores": os.cpu_count(),
            "load_average": load, "busiest": busiest}


def describe(seen):
    """One line: `0.93 of 2 cores busy (load 1.20 0.80 0.40), 0.10 stolen; busiest: ddp-train (pid 42) 0.90`
    (stolen: cores the hypervisor gave to other machines, where above 0)."""
    load = f" (load {' '.join(f'{x:.2f}' for x in seen['load_average'])})" if "load_average" in seen else ""
    stolen = f", {seen['steal_cores']:.2f} stolen" if seen.get("steal_cores") else ""
    busiest = ", ".join(f"{p['name']} (pid {p['pid']}) {p['cores']:.2f}" for p in seen["busiest"])
    return f"{seen['busy_cores']:.2f} of {seen['cores']} cores busy{load}{stolen}" + \
        (f"; busiest: {busiest}" if busiest else "")


def say_now(line):
    print(line, flush=True)


def wait_until_quiet(limit_cores=QUIET_CORES, patience_s=60.0, say=say_now):
    """Sample each second until others keep fewer than `limit_cores` busy, or `patience_s` has passed;
    returns the last sample, with `quiet` and `waited_s`. A machine that stays busy is not refused (its
    owner may not be able to stop what runs there): `say` warns, naming what keeps it busy."""
    start, seen = time.monotonic(), sample()
    if seen["busy_cores"] >= limit_cores:
        say(f"  machine: {describe(seen)}; waiting up to {patience_s:.0f} s for it to quiet before the bench")
    while seen["busy_cores"] >= limit_cores and time.monotonic() - start < patience_s:
        seen = sample()
    seen["quiet"], seen["waited_s"] = seen["busy_cores"] < limit_cores, round(time.monotonic() - start, 1)
    if not seen["quiet"]:
        say(f"  machine: WARNING: still {describe(seen)} after {patience_s:.0f} s; the bench measures a machine "
            "slower than an idle one, and its predictions will come in long where those processes end")
    return seen



def _processes_with_parents():
    """{pid: (parent pid, name, ticks, start time)} of every process readable now (the start time, in
    ticks since boot, tells a pid used again from the process that had it)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
            name, ticks = process_ticks(text)
            rest = text[text.rindex(")") + 2:].split()
            found[int(pid)] = (int(rest[1]), name, ticks, int(rest[19]))  # ppid, starttime: fields 4 and 22
        except (OSError, ValueError, IndexError):  # it ended between the listing and the read
            continue
    return found


def descends_from(pid, ancestor, parents):
    """Whether `pid` is `ancestor` or below it, in {pid: (parent pid, ...)}."""
    seen = set()
    while pid not in seen and pid in parents:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = parents[pid][0]
    return pid == ancestor


class Watch:
    """The cores that processes other than this one and those it started kept busy while it was open:
    a thread reads /proc each `interval` seconds and adds up the ticks of every process outside this
    one's tree (from 0 for one that started meanwhile), busiest named. Why: a look before a bench and one
    after it miss what ran in between. A rerun's bench read 15x the training time after each evaluation
    (6.1 ms against 0.41) while a test and a report ran beside it for a minute, and nothing it recorded
    said so. Not /proc/stat less os.times(): mpirun's ranks leave no children's times here (0.2-0.35
    of a core read busy on a quiet machine). A process that starts and ends between two reads is missed."""

    def __init__(self, interval=1.0, look=_processes_with_parents, clock=time.monotonic):
        self.interval, self.look, self.clock, self.me = interval, look, clock, os.getpid()
        self.others, self.ours, self.stopped = {}, set(), threading.Event()
        self.start, self.steal = clock(), _cpu_now()[1]
        self._read(first=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, first=False):
        processes = self.look()
        for pid, (_, name, ticks, started) in processes.items():
            key = (pid, started)  # a pid used again is another process
            if key in self.others:
                self.others[key][2] = ticks
            elif key not in self.ours:  # once ours, ours: a rank whose mpirun ended first is left to init
                if descends_from(pid, self.me, processes):
                    self.ours.add(key)
                else:
                    self.others[key] = [name, ticks if first else 0, ticks]

    def _run(self):
        while not self.stopped.wait(self.interval):
            self._read()

    def stop(self, top=3):
        """{"busy_cores", "busiest"} of the others since it started (as sample's), and "steal_cores": what
        the hypervisor gave to other machines meanwhile (a slow spell no process here caused)."""
        self.stopped.set()
        self.thread.join()
        self._read()
        elapsed = max(self.clock() - self.start, 1e-9)
        used = sorted(((last - first, pid, name) for (pid, _), (name, first, last) in self.others.items()), reverse=True)
        return {"busy_cores": round(sum(t for t, _, _ in used) / CLOCK_TICKS / elapsed, 2), "cores": os.cpu_count(),
                "steal_cores": round((_cpu_now()[1] - self.steal) / CLOCK_TICKS / elapsed, 2),
                "busiest": [{"pid": pid, "name": name, "cores": round(t / CLOCK_TICKS / elapsed, 2)}
                            for t, pid, name in used[:top] if t > 0]}
