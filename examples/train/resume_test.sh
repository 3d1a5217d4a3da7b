#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# lowbit-train's resume contract, run by ctest (examples/train/resume_tests.cmake). Every step checks the exit
# code and the message it expects, and the results are compared byte for byte (cmp), never approximately.
#
#   resume_test.sh roundtrip TRAIN WORK "K1 K2 ..." ARGS...
#       an uninterrupted run with checkpoints, then runs resumed from checkpoints K1, K2, ...: the final model
#       (--save-model) and every checkpoint written after the resume are identical to the uninterrupted run's.
#   resume_test.sh kill TRAIN WORK ARGS...
#       a run killed with SIGKILL between two checkpoints, resumed and killed again while a checkpoint is being
#       written (held after its temporary file, before the rename: LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT), then
#       resumed to the end: every checkpoint left loads, and everything matches the uninterrupted run.
#   resume_test.sh refuse TRAIN WORK ARGS...
#       checkpoints of another method or model, a model-only checkpoint and a damaged one are refused by name.
# ARGS are lowbit-train's options for the run (without --checkpoint-every/--checkpoint-dir/--save-model).
set -u
mode=$1 train=$2 work=$3
shift 3
every=2

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect CODE PATTERN FILE: the last command's exit code was CODE and FILE matches PATTERN (grep -E).
expect() {
    [ "$rc" -eq "$1" ] || { cat "$3" >&2; fail "exit code $rc, expected $1"; }
    grep -Eq -- "$2" "$3" || { cat "$3" >&2; fail "no line matches '$2'"; }
}
# All checkpoints in DIR load completely (format and checksum), and no temporary file is left unless allowed.
check_dir() {
    local dir=$1 temps=${2:-none}
    "$train" --check-checkpoint "$dir"/*.lbck > "$work/check.out" 2>&1
    rc=$?
    expect 0 "ckpt-[0-9]+\.lbck: ok, run state of --method" "$work/check.out"
    if grep -q "lowbit-train:" "$work/check.out"; then cat "$work/check.out" >&2; fail "a checkpoint in $dir does not load"; fi
    if [ "$temps" = none ] && ls "$dir" | grep -q '\.tmp-'; then fail "a temporary file is left in $dir"; fi
    return 0
}
latest() { ls "$1"/ckpt-*.lbck | sort | tail -n 1; }
# Every checkpoint both directories have is the same file, byte for byte; at least MIN of them.
same_checkpoints() {
    local a=$1 b=$2 min=$3 n=0
    for f in "$b"/ckpt-*.lbck; do
        cmp "$a/$(basename "$f")" "$f" || fail "$(basename "$f") differs from the uninterrupted run's"
        n=$((n + 1))
    done
    [ "$n" -ge "$min" ] || fail "only $n checkpoints compared in $b, expected at least $min"
}

rm -rf "$work"
mkdir -p "$work"

full_run() {
    "$train" "$@" --checkpoint-every $every --checkpoint-dir "$work/full" --save-model "$work/full.lbck" \
        > "$work/full.out" 2>&1
    rc=$?
    expect 0 "checkpoint $work/full/ckpt-000001\.lbck: stage [a-z]+, step $every\$" "$work/full.out"
    expect 0 '^\{"model": .*"test_acc": 0\.[0-9]+' "$work/full.out"
    check_dir "$work/full"
}

case $mode in
roundtrip)
    froms=$1
    shift
    full_run "$@"
    for k in $froms; do
        ck=$(printf '%s/full/ckpt-%06d.lbck' "$work" "$k")
        [ -f "$ck" ] || fail "the uninterrupted run wrote no $ck"
        dir="$work/from$k"
        "$train" "$@" --checkpoint-every $every --checkpoint-dir "$dir" --resume "$ck" --save-model "$dir.lbck" \
            > "$dir.out" 2>&1
        rc=$?
        expect 0 "^resuming from $ck: stage [a-z]+, step [0-9]+\$" "$dir.out"
        expect 0 '^\{"model": .*"test_acc": 0\.[0-9]+' "$dir.out"
        cmp "$work/full.lbck" "$dir.lbck" || fail "the run resumed from checkpoint $k ends with other weights"
        check_dir "$dir"
        same_checkpoints "$work/full" "$dir" 1
        echo "resumed from checkpoint $k: final model and $(ls "$dir" | wc -l) later checkpoints identical"
    done
    ;;
kill)
    full_run "$@"
    total=$(ls "$work/full" | wc -l)
    [ "$total" -ge 5 ] || fail "the uninterrupted run wrote only $total checkpoints; the test needs 5"
    dir="$work/killed"
    # 1. SIGKILL between two checkpoints: as soon as the second is complete. The third is held before its
    # rename, so that on a loaded machine the run cannot get past it (or finish) before the kill lands.
    LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT=3 "$train" "$@" --checkpoint-every $every --checkpoint-dir "$dir" > "$work/k1.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do grep -q "ckpt-000002\.lbck: stage" "$work/k1.out" && break; sleep 0.05; done
    kill -KILL $pid || fail "the first run ended before it could be killed"
    wait $pid
    rc=$?
    expect 137 "checkpoint $dir/ckpt-000002\.lbck: stage" "$work/k1.out"
    grep -q '^{"model"' "$work/k1.out" && fail "the first run finished before it was killed"
    check_dir "$dir" allowed  # the held third checkpoint's temporary file may be there: the resume removes it
    first=$(latest "$dir")
    echo "killed between checkpoints; the last complete one: $(basename "$first")"
    # 2. SIGKILL while the second checkpoint of the resumed run is being written: the writer holds after its
    # temporary file is complete, before the rename, and says so; the kill lands in that window.
    LOWBIT_TRAIN_TEST_HOLD_CHECKPOINT=2 "$train" "$@" --checkpoint-every $every --checkpoint-dir "$dir" \
        --resume "$first" > "$work/k2.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 1200); do grep -q "before its rename" "$work/k2.out" && break; sleep 0.05; done
    kill -KILL $pid || fail "the second run ended before it could be killed"
    wait $pid
    rc=$?
    expect 137 "^lowbit-train: test: holding $dir/ckpt-[0-9]+\.lbck\.tmp-[0-9a-f]+ before its rename\$" "$work/k2.out"
    held=$(sed -n 's/^lowbit-train: test: holding \(.*\)\.tmp-[0-9a-f]* before its rename$/\1/p' "$work/k2.out")
    [ -f "$held" ] && fail "$held exists although its writer was killed before the rename"
    ls "$dir" | grep -q "^$(basename "$held")\.tmp-" || fail "the killed writer left no temporary file"
    check_dir "$dir" allowed
    second=$(latest "$dir")
    [ "$second" \> "$first" ] || fail "the resumed run wrote no checkpoint before it was killed"
    echo "killed while writing $(basename "$held"); the last complete one: $(basename "$second")"
    # 3. Resume to the end: the stray temporary file goes, and the run ends as the uninterrupted one.
    "$train" "$@" --checkpoint-every $every --checkpoint-dir "$dir" --resume "$second" \
        --save-model "$work/resumed.lbck" > "$work/k3.out" 2>&1
    rc=$?
    expect 0 "^removed $(basename "$held")\.tmp-[0-9a-f]+, the temporary file of a checkpoint that was not completed\$" "$work/k3.out"
    expect 0 "^resuming from $second: stage" "$work/k3.out"
    cmp "$work/full.lbck" "$work/resumed.lbck" || fail "the resumed run ends with other weights"
    check_dir "$dir"
    [ "$(ls "$dir" | wc -l)" -eq "$total" ] || fail "$dir holds $(ls "$dir" | wc -l) checkpoints, expected $total"
    same_checkpoints "$work/full" "$dir" "$total"
    echo "after two SIGKILLs: all $total checkpoints and the final model identical to the uninterrupted run's"
    ;;
refuse)
    # ARGS without --method, --hidden and --seed, which this mode varies.
    full_run "$@" --method sr --hidden 16 --seed 1
    ck="$work/full/ckpt-000001.lbck"
    "$train" "$@" --method bc --hidden 16 --seed 1 --resume "$ck" > "$work/r1.out" 2>&1
    rc=$?
    expect 1 "^lowbit-train: lowbit: $ck: the checkpoint was written with --method sr, this run uses --method bc\$" "$work/r1.out"
    "$train" "$@" --method sr --hidden 8 --seed 1 --resume "$ck" > "$work/r2.out" 2>&1
    rc=$?
    expect 1 "^lowbit-train: lowbit: $ck: the checkpoint was written with --hidden 16, this run uses --hidden 8\$" "$work/r2.out"
    "$train" "$@" --method sr --hidden 16 --seed 2 --resume "$ck" > "$work/r3.out" 2>&1
    rc=$?
    expect 1 "^lowbit-train: lowbit: $ck: the checkpoint was written with --seed 1, this run uses --seed 2\$" "$work/r3.out"
    "$train" "$@" --method sr --hidden 16 --seed 1 --resume "$work/full.lbck" > "$work/r4.out" 2>&1
    rc=$?
    expect 1 "full\.lbck: not a checkpoint of lowbit-train --checkpoint-every: it holds a model's state only" "$work/r4.out"
    head -c 100 "$ck" > "$work/cut.lbck"
    "$train" "$@" --method sr --hidden 16 --seed 1 --resume "$work/cut.lbck" > "$work/r5.out" 2>&1
    rc=$?
    expect 1 "cut\.lbck: truncated" "$work/r5.out"
    "$train" --check-checkpoint "$ck" "$work/cut.lbck" > "$work/r6.out" 2>&1
    rc=$?
    expect 1 "cut\.lbck: truncated" "$work/r6.out"
    expect 1 "ckpt-000001\.lbck: ok, run state of --method sr, stage train, step $every \(epoch 0, batch $every\)" "$work/r6.out"
    "$train" "$@" --checkpoint-every 3 > "$work/r7.out" 2>&1
    rc=$?
    expect 2 "--checkpoint-every and --checkpoint-dir go together" "$work/r7.out"
    echo "refused: another method, width and seed, a model-only and a truncated checkpoint"
    ;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS"
