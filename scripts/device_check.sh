#!/usr/bin/env bash
# Every GPU check as one prepared command, within 10 minutes on one H100/H200:
#   1. harness doctor on CUDA (versions, the fast sampler against generate at batch 16, 64
#      and 256, training at 64x1024 tokens, bf16 against fp32, TriMul), JSON in $OUT;
#   2. the GPU tests (pytest -m gpu);
#   3. a 3-step run on CUDA in bf16 with a random model of SmolLM2's shape, CSVs in $OUT.
# The embedded model's GGUF file may come from a path (HARNESS_SMOLLM2_GGUF=FILE) or in
# parts that this script joins (GGUF_PARTS="part1 part2"); without it, the checks that need
# the real model say so and the others run.
#
#   OUT=/tmp/out GGUF_PARTS="a.part b.part" bash scripts/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
if [ -n "${GGUF_PARTS:-}" ]; then
    # shellcheck disable=SC2086  # the parts are a space-separated list of paths
    cat $GGUF_PARTS > "$OUT/smollm2.gguf" && export HARNESS_SMOLLM2_GGUF="$OUT/smollm2.gguf"
fi
status=0
step() {  # step NAME SECONDS CMD...: run it under a time limit, log it, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name" | tee -a "$OUT/device_check.log"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc in $((SECONDS - start)) s" | tee -a "$OUT/device_check.log"
    [ "$rc" -eq 0 ] || status=1
}
step doctor 300 "$PY" -m harness doctor --device cuda --json "$OUT/doctor.json"
step pytest_gpu 180 "$PY" -m pytest -q -m gpu
step run_bf16 120 "$PY" -m harness discover --env erdos --model smollm2-shape --budget smoke \
    --set steps=3 --set device=cuda --quiet --out "$OUT/run"
exit $status
