#!/usr/bin/env bash
# Studies as Slurm job arrays on a running local cluster (tests/cluster/with_cluster.sh starts it),
# submitted from its login node (head) as a user would:
#  1. a node lost in the middle of an array (node2's slurmd and the task's processes killed: the
#     controller declares it down, the task NODE_FAIL) costs a retry, not a run; node2 is then given
#     back its slurmd for the checks that follow;
#  2. launch/study configs/study-smoke.yaml --slurm, stopped with Ctrl-C once a sweep run has
#     finished, cancels its arrays; --reuse --slurm submits only the runs that had not finished; every
#     run ends with the parameters_crc32 it has run one at a time on this host, its summary.json names
#     the cluster's nodes, and one at a time on this host keeps every run (--reuse does not depend on
#     the executor).
set -euo pipefail
: "${DDP_SOURCE_DIR:?}" "${DDP_SLURM_STATE:?}" "${SLURM_CONF:?}"
cd "$DDP_SOURCE_DIR"
train=${DDP_TRAIN:-$PWD/build/ddp-train}
. cluster/lib.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
on_head() { cluster/exec head "$(printf '%q ' "$@")"; }
# One task a node at a time (--exclusive): both nodes take runs, and the machine's 2 cores are
# not shared by four tasks.
slurm=(--binary "$train" --slurm --slurm-args=--exclusive)
crcs() {  # "run crc" for every run of a study's output, sorted
  python3 - "$1" <<'PY'
import json, os, sys
runs = os.path.join(sys.argv[1], "runs")
for name in sorted(n for n in os.listdir(runs) if os.path.isfile(os.path.join(runs, n, "summary.json"))):
    print(name, json.load(open(os.path.join(runs, name, "summary.json")))["parameters_crc32"])
PY
}

# 1. node2 lost while it runs a task: the task is submitted again, the study completes.
cat >"$work/lost.yaml" <<'YAML'
name: lost-node
config: configs/mnist.yaml
overrides: [train.epochs=12]
local_batch: 32
global_batches: [32]
max_real_ranks: 1
seeds: [1, 2]
rules:
  - {name: none, overrides: [lr.rule=none]}
YAML
on_head launch/study "$work/lost.yaml" --out "$work/lost" "${slurm[@]}" >"$work/lost.log" 2>&1 &
study=$!
for _ in $(seq 1 600); do
  on_head squeue -h -t running -o '%N' | grep -qx node2 && break
  sleep 0.2
done
on_head squeue -h -t running -o '%N' | grep -qx node2 || { cat "$work/lost.log"; fail "no task ever ran on node2"; }
holder=$(cat "$(holder_pid_file node2)")
for pid in $(ip netns pids "$(netns_of node2)"); do [ "$pid" = "$holder" ] || kill -9 "$pid" 2>/dev/null || true; done
echo "killed node2's slurmd and its task while it ran"
wait "$study" || { cat "$work/lost.log"; fail "the study with a lost node exited $?"; }
grep -q "lost to the cluster (NODE_FAIL); submitting it again (1 of 2)" "$work/lost.log" \
  || { cat "$work/lost.log"; fail "the lost task was not submitted again"; }
grep -q "^none,32,1,1,1,ok" "$work/lost/runs.csv" && grep -q "^none,32,1,1,2,ok" "$work/lost/runs.csv" \
  || { cat "$work/lost/runs.csv"; fail "not every run completed after the node was lost"; }
grep -q "; 1 run submitted again after the cluster lost it (1 retry)" "$work/lost/report.md" \
  || fail "the report does not count the retry"
cluster/exec node2 slurmd -f "$SLURM_CONF" -N node2
for _ in $(seq 1 60); do on_head sinfo -h -n node2 -o '%t' | grep -qx idle && break; sleep 1; done
on_head sinfo -h -n node2 -o '%t' | grep -qx idle || fail "node2 did not come back: $(on_head sinfo -h -N)"
echo "ok: a node lost in the middle of an array cost one retry; every run completed; node2 is back"

# 2. The smoke study one at a time on this host (the reference), then as arrays, stopped by Ctrl-C
#    once a sweep run has finished: the arrays are cancelled, --reuse submits only the rest.
launch/study configs/study-smoke.yaml --out "$work/serial" --binary "$train" >"$work/serial.log" 2>&1 \
  || { cat "$work/serial.log"; fail "the smoke study one at a time failed"; }
[ "$(crcs "$work/serial" | wc -l)" -eq 7 ] || fail "the smoke study made $(crcs "$work/serial" | wc -l) runs, not 7"

set -m  # a job of its own, so that the driver does not start with SIGINT ignored
# cluster/exec execs the driver: $! is the process Ctrl-C reaches.
cluster/exec head "$(printf '%q ' launch/study configs/study-smoke.yaml --out "$work/stopped" "${slurm[@]}")" \
  >"$work/stopped.log" 2>&1 &
study=$!
set +m
for _ in $(seq 1 900); do
  compgen -G "$work/stopped/runs/[!p]*.exit" >/dev/null && break
  sleep 0.2
done
kill -INT "$study"
status=0
wait "$study" || status=$?
[ "$status" -eq 130 ] || { cat "$work/stopped.log"; fail "Ctrl-C: the study exited $status, not 130"; }
grep -q "cancelled Slurm arrays" "$work/stopped.log" || { cat "$work/stopped.log"; fail "Ctrl-C did not cancel"; }
for _ in $(seq 1 60); do [ -z "$(on_head squeue -h -n study)" ] && break; sleep 0.5; done
[ -z "$(on_head squeue -h -n study)" ] || fail "tasks left after Ctrl-C: $(on_head squeue -h -n study)"
finished=$(ls "$work"/stopped/runs/*/summary.json | wc -l)
[ "$finished" -ge 2 ] && [ "$finished" -lt 7 ] || fail "$finished runs had finished at Ctrl-C: expected some, not all"
on_head launch/study configs/study-smoke.yaml --out "$work/stopped" "${slurm[@]}" --reuse >"$work/reuse.log" 2>&1 \
  || { cat "$work/reuse.log"; fail "--reuse after Ctrl-C failed"; }
reused=$(grep -c "reused: an earlier invocation" "$work/reuse.log")
submitted=$(sed -n 's/.*submitted \([0-9]*\) runs of .*/\1/p' "$work/reuse.log" | awk '{n += $1} END {print n + 0}')
[ "$reused" -ge "$finished" ] && [ $((reused + submitted)) -eq 7 ] \
  || { cat "$work/reuse.log"; fail "--reuse kept $reused runs ($finished had finished) and submitted $submitted"; }
diff <(crcs "$work/serial") <(crcs "$work/stopped") || fail "--slurm ended runs with other parameters than one at a time"
python3 - "$work/stopped/runs" <<'PY' || { cat "$work/reuse.log"; exit 1; }
import glob, json, os, sys
hosts = {os.path.basename(os.path.dirname(p)): json.load(open(p))["hosts"] for p in glob.glob(sys.argv[1] + "/*/summary.json")}
assert all(set(h) <= {"node1", "node2"} for h in hosts.values()), f"runs off the cluster's nodes: {hosts}"
assert set().union(*hosts.values()) == {"node1", "node2"}, f"the arrays used one node only: {hosts}"
print("ok: summary.json names", ", ".join(f"{k} on {','.join(v)}" for k, v in sorted(hosts.items())))
PY
grep "Slurm: .* runs in" "$work/reuse.log"
launch/study configs/study-smoke.yaml --out "$work/stopped" --binary "$train" --reuse >"$work/here.log" 2>&1 \
  || { cat "$work/here.log"; fail "--reuse on this host failed"; }
[ "$(grep -c "reused: an earlier invocation" "$work/here.log")" -eq 7 ] \
  || { cat "$work/here.log"; fail "one at a time did not keep the runs the arrays finished"; }
echo "ok: Ctrl-C cancelled the arrays with $finished runs finished; --reuse submitted the other $submitted; every run"\
  "has the parameters_crc32 of one at a time, and one at a time kept all 7"
