#!/bin/sh
# The CLI round-trip tests' agreement bounds (examples/CMakeLists.txt), none of which depends on the summation
# order of the fake-quant model's float GEMMs (OpenBLAS's kernel, threads, -march):
#   check_agreement.sh TRAIN_OUTPUT INFER_OUTPUT
# TRAIN_OUTPUT ends with lowbit-train's JSON line, INFER_OUTPUT with lowbit-infer --checkpoint's on the same test
# set. lowbit-infer's deploy::audit checks every hidden code and logit of the packed model against the fake-quant
# model's own rounding, and names the images where that rounding could decide anything (a code within rounding of
# a step, a near tie of two logits, or a code that differs). Then:
#  - no code or logit is outside the rounding bound, and no argmax differs where every code agrees (ties aside);
#  - the argmax disagreements are at most the images near rounding (a disagreement needs one of those);
#  - lowbit-train's test_acc and lowbit-infer's fake_quant_acc are two evaluations of the same fake-quant model in
#    other batch sizes, so their correct counts differ by at most the images near rounding.
set -eu
train=$(tail -n 1 "$1")
infer=$(tail -n 1 "$2")
field() { # field JSON KEY -> the number after "KEY": (fails if missing)
    v=$(printf '%s\n' "$1" | grep -o "\"$2\": [0-9.]*" | head -n 1 | sed 's/.*: //')
    if [ -z "$v" ]; then
        echo "check_agreement: no \"$2\" in: $1" >&2
        exit 1
    fi
    printf '%s\n' "$v"
}
images=$(field "$infer" test_images)
near=$(field "$infer" images_near_rounding)
unexplained=$(field "$infer" unexplained_code_diffs)
where=$(field "$infer" argmax_disagreements_where_codes_agree)
outside=$(field "$infer" logits_outside_bound)
disagree=$(field "$infer" argmax_disagreements)
train_correct=$(awk -v a="$(field "$train" test_acc)" -v n="$images" 'BEGIN { printf "%d", a * n + 0.5 }')
fake_correct=$(awk -v a="$(field "$infer" fake_quant_acc)" -v n="$images" 'BEGIN { printf "%d", a * n + 0.5 }')
gap=$((train_correct > fake_correct ? train_correct - fake_correct : fake_correct - train_correct))
echo "test images $images, near rounding $near; unexplained code diffs $unexplained; argmax disagreements $disagree" \
     "($where where every code agrees); logits outside the bound $outside; correct: lowbit-train $train_correct," \
     "lowbit-infer's fake-quant model $fake_correct"
fail=0
[ "$unexplained" -eq 0 ] || { echo "FAIL: $unexplained packed codes outside the fake-quant model's rounding"; fail=1; }
[ "$where" -eq 0 ] || { echo "FAIL: $where argmax disagreements where every code agrees"; fail=1; }
[ "$outside" -eq 0 ] || { echo "FAIL: $outside logits outside their rounding bound"; fail=1; }
[ "$disagree" -le "$near" ] || { echo "FAIL: $disagree argmax disagreements > $near images near rounding"; fail=1; }
[ "$gap" -le "$near" ] || { echo "FAIL: test_acc and fake_quant_acc differ by $gap images > $near near rounding"; fail=1; }
[ "$fail" -eq 0 ] && echo "agreement bounds hold"
exit "$fail"
