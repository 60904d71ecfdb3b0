#!/usr/bin/env bash
# Every GPU figure of the pre-trainer speed issue (#14) in one go (≈ 6–8 min on one H100/H200), from the repo root:
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
# 1. BASE at the thesis's 150 s and at 600 s, eager, transformers alongside; the full trainer; the ablation of
#    each fast path (150 s); a profiler table of two 150 s steps.
timeout 300 $B --models base --batch-s 150,600 --modes eager --steps 8 --trainer --ablate --profile \
    2>&1 | tee "$OUT/base-eager.txt"
# 2. LARGE at 600 s: must fit on 80 GB (GiB column).
timeout 120 $B --models large --batch-s 600 --modes eager --steps 5 2>&1 | tee "$OUT/large.txt"
# 3. BASE with train.compile's compilation (static shapes; the first step of each shape compiles).
timeout 300 $B --models base --batch-s 150,600 --modes compile --steps 8 2>&1 | tee "$OUT/base-compile.txt"
# 4. BASE at 1,200 s (80 × 15 s), ours only.
timeout 60 $B --models base --batch-s 1200 --modes eager --steps 4 --no-hf 2>&1 | tee "$OUT/base-1200.txt"
