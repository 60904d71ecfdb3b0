#!/usr/bin/env bash
# Every GPU figure of the pre-trainer speed issue (#14) in one go, within 540 s on one H100/H200, from the repo root:
#     bash benchmarks/gpu_pretrain.sh [OUT_DIR]
# Needs only torch, transformers, numpy, pyarrow and pyyaml (synthetic batches, raw pcm16 shards: no
# soundfile/ffmpeg). Writes OUT_DIR/*.txt (the printed tables), results.jsonl and trace.json (profiler).
# Each part has its own time limit, so a slow or failing part does not cost the others.
set -uo pipefail
OUT=${1:-${OUT:-bench_out}}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}
B="$PY -m benchmarks.bench_pretrain --device cuda --precision bf16 --out $OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$OUT/gpu.txt"
# The parts share a 530 s budget: each runs for at most its own limit and never past the budget's end.
START=$SECONDS
BUDGET=${BUDGET_S:-530}
part() {  # part LIMIT_S NAME ARGS…: run one part for min(LIMIT_S, what is left of the budget)
    local limit=$1 name=$2; shift 2
    local left=$((BUDGET - (SECONDS - START)))
    ((left < limit)) && limit=$left
    if ((limit < 20)); then echo "skipped $name: budget spent" | tee "$OUT/$name.txt"; return; fi
    timeout "$limit" $B "$@" 2>&1 | tee "$OUT/$name.txt"
}
# 1. BASE at the thesis's 150 s and at 600 s, eager, transformers alongside; the full trainer; the ablation of
#    each fast path (150 s); a profiler table of two 150 s steps.
part 210 base-eager --models base --batch-s 150,600 --modes eager --steps 6 --trainer --ablate --profile
# 2. LARGE at 600 s: must fit on 80 GB (GiB column).
part 80 large --models large --batch-s 600 --modes eager --steps 4 --no-hf
# 3. BASE with train.compile's compilation (static shapes per bucket; the first step of each shape compiles),
#    without the transformers baseline (part 1 has it).
part 180 base-compile --models base --batch-s 150,600 --modes compile --steps 6 --no-hf
# 4. BASE at 1,200 s (80 × 15 s), ours only.
part 50 base-1200 --models base --batch-s 1200 --modes eager --steps 4 --no-hf
echo "gpu_pretrain.sh: $((SECONDS - START)) s"
