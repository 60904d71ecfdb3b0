#!/usr/bin/env bash
# The GPU figures of issue 26 in one call (≤ 9 min): curate's wx-diar-3s and clean pipelines (see
# benchmarks/gpu_curate.py for what each stage runs) with backend: transformers on ≥ 1 h of real recordings.
#   here:  python -m benchmarks.gpu_pack --out bench_pack        # ≤ 64 MiB, git-ignored; needs the venv
#   there: bash benchmarks/gpu_curate.sh [PACK_DIR] [OUT_DIR]     # torch, transformers, numpy, pyarrow, pyyaml
# HOURS (default 1.0): audio to make of the packed recordings; BUDGET_S (default 420): no group of recordings
# starts that would end after it (so restore + loop + report stay under LIMIT_S, default 500 s).
# SMOKE=1 runs it on CPU with a few seconds of audio (the tests do this). BENCH_SITE=DIR: import only what DIR
# holds besides the standard library (python -S; the tests use it to stand in for the GPU machine).
set -uo pipefail
PACK=${1:-bench_pack}
OUT=${2:-${OUT:-bench_out}}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -n "${BENCH_SITE:-}" ]; then
    export PYTHONPATH="$BENCH_SITE"
    PY="$PY -S"
else
    unset PYTHONPATH  # the packed curate code, not a checkout's
fi
if [ -n "${SMOKE:-}" ]; then
    ARGS="--device cpu --hours ${HOURS:-0.002} --beam-size 1 --batch-size 4 --threads 1 --budget-s ${BUDGET_S:-300}"
else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    ARGS="--device cuda --hours ${HOURS:-1.0} --budget-s ${BUDGET_S:-420}"
fi
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$OUT/gpu.txt"
# shellcheck disable=SC2086
timeout "${LIMIT_S:-500}" $PY "$PACK/code/benchmarks/gpu_curate.py" run --dir "$PACK" --out "$OUT" $ARGS \
    2>&1 | grep -v "generation_config\|custom logits processor\|attention mask" | tee "$OUT/gpu_curate.txt"
exit "${PIPESTATUS[0]}"
