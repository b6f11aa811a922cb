#!/usr/bin/env bash
# A disk that fills while rank 1 waits (in the next step's all-reduce) for rank 0's checkpoint
# write ends the whole job at once, through MPI_Abort, far within comm.timeout_s, naming rank 0,
# the checkpoint and the system's reason; no temporary file stays.
source "$(dirname "$0")/lib.sh"
source "$DDP_SOURCE_DIR/tests/common/small_disk.sh"
deadline=20
# 2 ranks: 62 steps per epoch; the first checkpoint (413 KB) fits in 600 KB, the second does not.
small_disk "$work/disk" 600k
run="$work/disk/run"
timeout 120 "$MPIEXEC" -n 2 $MPIEXEC_FLAGS "$DDP_TRAIN" --config configs/mnist.yaml output.progress=false \
  train.epochs=1000 comm.timeout_s=$deadline output.dir="$run" >"$work/out" 2>&1 &
launcher=$!
# The moment rank 0 reports the failed write (polled every 20 ms), then the job's end.
while kill -0 "$launcher" 2>/dev/null && ! output_has "error: rank 0: "; do sleep 0.02; done
failed_at=$(date +%s.%N)
wait "$launcher"
rc=$?
ended_at=$(date +%s.%N)
took=$(python3 -c "print(f'{$ended_at - $failed_at:.2f}')")
echo "the job ended ${took} s after rank 0 reported the failed write (comm.timeout_s=$deadline)"
check "the job ended with exit 1 (got $rc)" [ "$rc" -eq 1 ]
check "within comm.timeout_s, at once (${took} s)" python3 -c "import sys; sys.exit(not $took < 5)"
check "rank 0 names the checkpoint and the reason" \
  output_has "^ddp-train: error: rank 0: $run/checkpoints/ckpt-0000000124.ddpckpt: cannot write: No space left on device"
check "... and says what to do" output_has "the disk is full: free space on it"
check "rank 0's MPI_Abort ended it, not rank 1's deadline" bash -c "! grep -q 'did not complete within' '$work/out'"
check "no temporary file is left behind" [ "$(temporaries "$run")" -eq 0 ]
check "the first checkpoint is intact" [ -f "$run/checkpoints/ckpt-0000000062.ddpckpt" ]
finish
