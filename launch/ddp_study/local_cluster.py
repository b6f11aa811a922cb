"""The local cluster of network namespaces (cluster/start --nodes N) that the slow-links study and
the planner run their multi-node runs on."""
import os
import subprocess
import tempfile

from . import ROOT
from .runs import run_stoppable


CLUSTER_KEYS = ("DDP_SLURM_STATE", "DDP_CLUSTER_NAME")  # what cluster/* and launch/mpirun read


class LocalCluster:
    """The local cluster the links part runs on: the one DDP_SLURM_STATE names if it is up with enough
    nodes (its caps put back at the end), else one of its own, in namespaces and state apart from any
    other, stopped at the end."""

    def __init__(self, nodes):
        self.nodes, self.own, self.previous_cap = nodes, False, None
        self.env = dict(os.environ)

    def __enter__(self):
        if self.running():
            shown = self.script("link")
            self.previous_cap = shown.split()[1] if "Mbit/s" in shown else None
            return self
        self.own = True
        self.state = tempfile.mkdtemp(prefix="ddp-slow-links.")
        self.env.update(DDP_SLURM_STATE=self.state, DDP_CLUSTER_NAME=f"sl{os.getpid() % 100000}")
        try:
            self.script("start", "--nodes", str(self.nodes))
        except BaseException:  # failed or interrupted half-way: what it started goes
            self.take_down()
            raise
        # The runs launch/mpirun starts inherit this process's environment: they must find this cluster.
        self.outer = {k: os.environ.get(k) for k in CLUSTER_KEYS}
        os.environ.update({k: self.env[k] for k in CLUSTER_KEYS})
        return self

    def __exit__(self, *_):
        if not self.own:
            self.script("link", *(["--mbit", self.previous_cap] if self.previous_cap else ["--off"]))
            return
        for key, value in self.outer.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.take_down()

    def take_down(self):
        subprocess.run([os.path.join(ROOT, "cluster", "stop")], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", self.state])

    def running(self):
        state = self.env.get("DDP_SLURM_STATE")
        if not state or not os.path.exists(os.path.join(state, "cluster.env")):
            return False
        with open(os.path.join(state, "cluster.env")) as f:
            layout = dict(line.strip().split("=", 1) for line in f if "=" in line)
        return int(layout.get("cluster_nodes", 0)) >= self.nodes and \
            subprocess.run([os.path.join(ROOT, "cluster", "link")], env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL).returncode == 0

    def script(self, name, *args):
        result = run_stoppable([os.path.join(ROOT, "cluster", name), *args], env=self.env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise RuntimeError(f"cluster/{name} {' '.join(args)} failed:\n{result.stdout}")
        return result.stdout

    def cap(self, mbit):
        self.script("link", *(["--mbit", str(mbit)] if mbit else ["--off"]))

    def burst_bytes(self):
        """The bucket of the cap in force (cluster/link records it: 4 ms of the rate), in bytes."""
        with open(os.path.join(self.env["DDP_SLURM_STATE"], "cluster.env")) as f:
            recorded = dict(line.strip().split("=", 1) for line in f if "=" in line)
        if "link_burst_bytes" not in recorded:
            raise RuntimeError("cluster/link recorded no bucket (link_burst_bytes) for the cap in force")
        return int(recorded["link_burst_bytes"])

    def hosts(self):
        return ",".join(f"node{i}" for i in range(1, self.nodes + 1))
