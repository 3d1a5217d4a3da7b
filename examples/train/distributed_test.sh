#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lowbit-train --distributed under mpirun, run by ctest (examples/train/distributed_tests.cmake). Every step
# checks the exit code and the message it expects; models are compared byte for byte (cmp).
#
#   distributed_test.sh bits TRAIN MPIRUN WORK ARGS...
#       -np 2 and -np 1 --shards 2 save the same model bytes and print the same accuracy; a plain run (one shard)
#       saves other bytes, so the comparison can fail; the JSON line reports the ranks, shards and bytes sent.
#   distributed_test.sh codes TRAIN MPIRUN WORK ARGS...
#       -np 2 with --gradient-bits 8 trains, says so in the JSON line, and sends fewer bytes than with floats.
#   distributed_test.sh dead TRAIN MPIRUN WORK ARGS...
#       while rank 0 writes its third checkpoint (held before the rename: LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT=3),
#       rank 1 is killed (SIGKILL): the job ends within 60 s with an error that says what happened, every
#       checkpoint left loads, and a run resumed from the last one on 1 process with 2 shards ends with the bytes
#       of an uninterrupted -np 2 run.
#   distributed_test.sh hung TRAIN MPIRUN WORK ARGS...
#       rank 0 hangs in its third checkpoint (held as above): rank 1 gives up after --peer-timeout 3 seconds with
#       an error naming rank 0, and the job ends.
# ARGS are lowbit-train's options (without --distributed, --shards, --save-model, --checkpoint-*).
set -u
mode=$1 train=$2 mpirun=$3 work=$4
shift 4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { local np=$1; shift; "$mpirun" -np "$np" --oversubscribe "$train" --distributed "$@"; }

fail() { echo "FAIL: $*" >&2; exit 1; }
expect() {  # expect CODE PATTERN FILE
    [ "$rc" -eq "$1" ] || { cat "$3" >&2; fail "exit code $rc, expected $1"; }
    grep -Eq -- "$2" "$3" || { cat "$3" >&2; fail "no line matches '$2'"; }
}
json_field() { grep -o "\"$1\": [^,}]*" "$2" | tail -n 1 | sed 's/.*: //'; }

rm -rf "$work"
mkdir -p "$work"

# The PID of rank R of the job writing to WORK/run (Open MPI sets OMPI_COMM_WORLD_RANK in each process).
rank_pid() {
    local want=$1 pid
    for pid in $(pgrep -f -- "--checkpoint-dir $work/run"); do
        if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$want"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

# Starts a 2-process run with a checkpoint every 2 steps in the background; rank 0 (the writer) holds its third
# checkpoint before the rename, forever. Returns once it holds.
start_and_hold() {
    LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT=3 mpi 2 "$@" --checkpoint-every 2 --checkpoint-dir "$work/run" \
        > "$work/run.out" 2>&1 &
    job=$!
    for _ in $(seq 600); do
        grep -q "lowbit-train: test: holding" "$work/run.out" && return 0
        kill -0 "$job" 2>/dev/null || { cat "$work/run.out" >&2; fail "the run ended before its third checkpoint"; }
        sleep 0.1
    done
    fail "rank 0 did not reach its third checkpoint within 60 s"
}

# Waits at most 60 s for the background job; sets rc and the seconds it took.
wait_job() {
    local t0=$SECONDS
    for _ in $(seq 600); do
        if ! kill -0 "$job" 2>/dev/null; then
            wait "$job"
            rc=$?
            took=$((SECONDS - t0))
            return 0
        fi
        sleep 0.1
    done
    kill -9 "$job" 2>/dev/null
    fail "the job was still running 60 s after its peer was gone"
}

case $mode in
bits)
    mpi 2 "$@" --save-model "$work/np2.lbck" > "$work/np2.out" 2>&1
    rc=$?
    expect 0 '"ranks": 2, "shards": 2' "$work/np2.out"
    mpi 1 "$@" --shards 2 --save-model "$work/np1.lbck" > "$work/np1.out" 2>&1
    rc=$?
    expect 0 '"ranks": 1, "shards": 2' "$work/np1.out"
    cmp "$work/np2.lbck" "$work/np1.lbck" || fail "-np 2 and -np 1 --shards 2 saved different models"
    [ "$(json_field test_acc "$work/np2.out")" = "$(json_field test_acc "$work/np1.out")" ] ||
        fail "different test accuracies"
    bytes=$(json_field allreduce_bytes "$work/np2.out")
    [ "$bytes" -gt 0 ] || fail "-np 2 sent no bytes"
    [ "$(json_field allreduce_bytes "$work/np1.out")" -eq 0 ] || fail "-np 1 sent bytes"
    # Only rank 0 prints: one JSON line.
    [ "$(grep -c '"ranks"' "$work/np2.out")" -eq 1 ] || fail "more than one process printed the JSON line"
    # One shard (a plain run) sums in another order: other bytes, so the cmp above can fail.
    "$train" "$@" --save-model "$work/plain.lbck" > "$work/plain.out" 2>&1
    rc=$?
    expect 0 '"ranks": 1, "shards": 1' "$work/plain.out"
    if cmp -s "$work/plain.lbck" "$work/np1.lbck"; then fail "one shard and two shards gave the same bytes"; fi
    echo "bits: ok (-np 2 = -np 1 --shards 2, $bytes bytes sent per process)"
    ;;
codes)
    mpi 2 "$@" > "$work/floats.out" 2>&1
    rc=$?
    expect 0 '"gradient_bits": 32' "$work/floats.out"
    mpi 2 "$@" --gradient-bits 8 > "$work/codes.out" 2>&1
    rc=$?
    expect 0 '"gradient_bits": 8' "$work/codes.out"
    floats=$(json_field allreduce_bytes "$work/floats.out") codes=$(json_field allreduce_bytes "$work/codes.out")
    # Rank 0 sends the gathered codes of both processes down (2 x 1 byte per value) against 4 bytes per value.
    [ $((codes * 3)) -lt $((floats * 2)) ] || fail "8-bit gradients sent $codes bytes, floats $floats"
    echo "codes: ok ($codes bytes with 8-bit gradients, $floats with floats)"
    ;;
dead)
    mpi 2 "$@" --save-model "$work/want.lbck" > "$work/want.out" 2>&1
    rc=$?
    expect 0 '"ranks": 2' "$work/want.out"
    start_and_hold "$@"
    pid=$(rank_pid 1) || fail "rank 1 not found"
    kill -9 "$pid"
    wait_job
    [ "$rc" -ne 0 ] || fail "the job exited with 0 after rank 1 was killed"
    grep -Eq "exited on signal 9|stopped by mpirun: another process of the job ended" "$work/run.out" ||
        { cat "$work/run.out" >&2; fail "no message says that a process died"; }
    "$train" --check-checkpoint "$work"/run/*.lbck > "$work/check.out" 2>&1
    rc=$?
    expect 0 ': ok, run state' "$work/check.out"
    last=$(ls "$work"/run/ckpt-*.lbck | tail -n 1)
    [ "$(basename "$last")" = ckpt-000002.lbck ] || fail "the last complete checkpoint is $last, expected the second"
    mpi 1 "$@" --shards 2 --resume "$last" --checkpoint-every 2 --checkpoint-dir "$work/run" \
        --save-model "$work/resumed.lbck" > "$work/resumed.out" 2>&1
    rc=$?
    expect 0 "resuming from $last" "$work/resumed.out"
    cmp "$work/want.lbck" "$work/resumed.lbck" || fail "the resumed run's model differs from the uninterrupted one's"
    echo "dead: ok (the job ended ${took} s after rank 1 died; resumed from $(basename "$last") on 1 process)"
    ;;
hung)
    start_and_hold "$@" --peer-timeout 3
    wait_job
    [ "$rc" -ne 0 ] || fail "the job exited with 0 with rank 0 hung"
    grep -Eq "rank 1: lowbit::mpi: rank 1 of 2: no answer from rank 0 within 3 s" "$work/run.out" ||
        { cat "$work/run.out" >&2; fail "rank 1 did not name the peer that stopped answering"; }
    echo "hung: ok (the job ended ${took} s after rank 0 hung)"
    ;;
*)
    fail "unknown mode $mode"
    ;;
esac
