#!/usr/bin/env bash
# One run of a study as one task of a Slurm job array. launch/ddp_study/slurm_array.py (the
# drivers' --slurm) submits it, one array per run shape:
#   sbatch --array=0-N%K --nodes=1 --ntasks=2 ... launch/slurm/study-task.sh TASKS_FILE
# Line SLURM_ARRAY_TASK_ID+1 of TASKS_FILE is the run, shell-quoted words: its log, its exit-status
# file, its time limit in seconds, the log's first line (its command line, which --reuse compares)
# and the command itself (srun --mpi=pmix: the run's ranks are this task's tasks). The status file,
# "EXIT STARTED ENDED" (exit 124: the run's own time limit ran out), is written last and whole:
# a task without one did not finish, whatever Slurm says of it.
set -uo pipefail
tasks=${1:?usage: study-task.sh TASKS_FILE (inside an sbatch --array job)}
: "${SLURM_ARRAY_TASK_ID:?not a task of a Slurm job array}"
line=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$tasks")
[ -n "$line" ] || { echo "study-task.sh: $tasks has no task $SLURM_ARRAY_TASK_ID" >&2; exit 2; }
eval "set -- $line"   # words quoted by Python's shlex.quote: no code runs here
log=$1 status=$2 limit=$3 first_line=$4
shift 4
echo "study-task.sh: task $SLURM_ARRAY_TASK_ID of array ${SLURM_ARRAY_JOB_ID:-?} on $(hostname -s): $first_line"
started=$(date +%s.%N)
{ printf '%s\n' "$first_line"; timeout --kill-after=10 "$limit" "$@"; } >"$log" 2>&1
code=$?
echo "$code $started $(date +%s.%N)" >"$status.tmp" && mv -f "$status.tmp" "$status"
echo "study-task.sh: exit $code"
exit "$code"
