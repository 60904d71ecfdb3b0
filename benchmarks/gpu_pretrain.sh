#!/usr/bin/env bash
# Every GPU figure of the pre-trainer speed issue in one go (≈ 6–8 min on one H100/H200), from the repo root:
#     bash benchmarks/gpu_pretrain.sh [OUT_DIR]
# Needs only torch, transformers, numpy, pyarrow and pyyaml (synthetic batches, raw pcm16 shards: no
# soundfile/ffmpeg). Writes OUT_DIR/{base,large,base-1200}.txt, results.jsonl and a profiler trace.
set -uo pipefail
OUT=${1:-${OUT:-bench_out}}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python}
B="$PY -m benchmarks.bench_pretrain --device cuda --precision bf16 --out $OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
# BASE at the thesis's 150 s and at 600 s: eager and compile, transformers alongside, the full trainer, the
# per-optimisation ablation (150 s) and a profiler table (150 s, eager).
timeout 420 $B --models base --batch-s 150,600 --modes eager,compile --steps 10 --trainer --ablate --profile \
    2>&1 | tee "$OUT/base.txt"
# LARGE must fit a 600 s batch on 80 GB (peak GiB column).
timeout 150 $B --models large --batch-s 600 --modes eager --steps 5 2>&1 | tee "$OUT/large.txt"
# BASE at 1,200 s (the last row), ours only.
timeout 60 $B --models base --batch-s 1200 --modes eager --steps 5 --no-hf 2>&1 | tee "$OUT/base-1200.txt"
