#!/usr/bin/env bash
# Capped links on a running local cluster (tests/cluster/with_cluster.sh starts it): cluster/link
# puts a tbf on both ends of every node's link, its bucket 4 ms of the rate, and the plain
# all-reduce then takes at least the time the cap allows; the reduced slow-links study
# (launch/slow-links, on this cluster) runs every mode, PowerSGD sending fewer bytes, and puts the
# cap back as it found it; --off lifts it.
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
. cluster/lib.sh
work=$(mktemp -d)
trap 'rm -rf "$work"; cluster/link --off >/dev/null 2>&1 || true' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cluster/link --mbit 100 >/dev/null
for end in "$(netns_of node1) eth0" "$(netns_of head) node1" "$(netns_of node2) eth0" "$(netns_of head) node2"; do
  read -r ns dev <<<"$end"
  ip netns exec "$ns" tc qdisc show dev "$dev" | grep -q "tbf .*rate 100Mbit burst 50000b" \
    || fail "no 100 Mbit tbf with a 4 ms bucket (50,000 bytes) on $dev in $ns"
done
[ "$(cluster/link)" = "cluster/link: 100 Mbit/s each way on every node" ] || fail "cluster/link shows '$(cluster/link)'"

launch/slow-links configs/study-slow-links-smoke.yaml --binary "$train" --out "$work/study" >"$work/study.log" 2>&1 \
  || { cat "$work/study.log"; fail "launch/slow-links failed"; }
python3 - "$work/study/runs.csv" <<'PY' || { cat "$work/study.log"; exit 1; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 10 and all(r["status"] == "ok" for r in rows), [(r["mode"], r["status"]) for r in rows]
def one(**k):
    (r,) = [r for r in rows if r["part"] == "links" and all(r[a] == str(v) for a, v in k.items())]
    return r
capped, free = one(mode="none", link_mbit=100), one(mode="none", link_mbit=0)
# 407,096 bytes a step at 100 Mbit/s cannot take less than 32.6 ms: the cap is in force. (How much
# faster the uncapped veth is depends on the machine's load: printed, not checked.)
bound = 407096 * 8 / 100e6
per_step = lambda r: float(r["comm_seconds"]) / float(r["steps"])
assert per_step(capped) >= 0.8 * bound, f"capped all-reduce {per_step(capped) * 1e3:.1f} ms < the cap's {bound * 1e3:.1f} ms"
psgd = one(mode="powersgd r2", link_mbit=100)
assert float(psgd["comm_bytes_per_step"]) < float(capped["comm_bytes_per_step"]) / 2, psgd["comm_bytes_per_step"]
assert psgd["parameters_crc32"] == one(mode="powersgd r2", link_mbit=0)["parameters_crc32"], "the link changed training"
print(f"ok: plain all-reduce {per_step(capped) * 1e3:.1f} ms a step at 100 Mbit/s (bound {bound * 1e3:.1f} ms), "
      f"{per_step(free) * 1e3:.2f} ms uncapped; PowerSGD {float(psgd['comm_bytes_per_step']):,.0f} B/step")
PY
grep -q "^## Targets" "$work/study/report.md" || fail "the report has no targets section"
[ "$(cluster/link)" = "cluster/link: 100 Mbit/s each way on every node" ] || fail "the study did not put the cap back: $(cluster/link)"
cluster/link --off >/dev/null
ip netns exec "$(netns_of node1)" tc qdisc show dev eth0 2>/dev/null | grep -q tbf && fail "--off left a tbf on node1's eth0"
echo "ok: capped links, the slow-links study on them, and the cap lifted"
