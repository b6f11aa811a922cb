"""What else this machine is doing while a benchmark measures it: the cores other processes keep busy,
read from /proc (Linux). A bench taken while a build, a test or a run left behind holds a core measures
a slower machine than the runs it prices will find, and nothing in its figures says so: the planner
waits a while for such a machine to quiet, and records what it saw beside its figures (as pyperf
warns of an unstable result, and Shopify's yjit-metrics records the load averages around its runs)."""
import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_ticks():
    """(busy, total) ticks of all cores since boot: idle and iowait are the not-busy ones."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _process_ticks():
    """{pid: (name, user + system ticks)} of every process readable now."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                text = f.read()
        except OSError:  # it ended between the listing and the read
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        found[int(pid)] = (name, int(rest[11]) + int(rest[12]))  # utime, stime: fields 14 and 15
    return found


def sample(seconds=1.0, top=3):
    """The cores kept busy over the next `seconds` (this process sleeping through them, so: by others),
    the busiest processes then, and the load averages, as a dict for bench.json."""
    busy0, total0 = _cpu_ticks()
    procs0, start = _process_ticks(), time.monotonic()
    time.sleep(seconds)
    busy1, total1 = _cpu_ticks()
    procs1, elapsed = _process_ticks(), time.monotonic() - start
    used = [(ticks - procs0[pid][1], pid, name) for pid, (name, ticks) in procs1.items()
            if pid in procs0 and pid != os.getpid()]
    busiest = [{"pid": pid, "name": name, "cores": round(t / CLOCK_TICKS / elapsed, 2)}
               for t, pid, name in sorted(used, reverse=True)[:top] if t > 0]
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    return {"at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "busy_cores": round((busy1 - busy0) / CLOCK_TICKS / elapsed, 2), "cores": os.cpu_count(),
            "load_average": load, "busiest": busiest}


def describe(seen):
    """One line: `0.93 of 2 cores busy (load 1.20 0.80 0.40); busiest: ddp-train 0.90`."""
    load = " ".join(f"{x:.2f}" for x in seen["load_average"])
    busiest = ", ".join(f"{p['name']} (pid {p['pid']}) {p['cores']:.2f}" for p in seen["busiest"])
    return f"{seen['busy_cores']:.2f} of {seen['cores']} cores busy (load {load})" + \
        (f"; busiest: {busiest}" if busiest else "")


def wait_until_quiet(limit_cores=0.25, patience_s=60.0, say=print):
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
