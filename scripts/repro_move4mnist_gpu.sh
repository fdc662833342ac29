#!/usr/bin/env bash
# The Move4MNIST study at the paper's data size on one GPU (paper Table 1: 1,800/600 videos of 32 frames),
# prepared to fit a 10-minute device slot: the CPU study's models and recipe (scripts/repro_move4mnist_cpu.sh:
# ResNet-18 from scratch, AdamW, cosine, the same faster digits) at the frames' own 64 px, bf16, channels-last.
# 10 epochs of 1,800 videos are 1,130 steps of 16 videos, about the CPU study's 1,200 (20 epochs of 960).
# Several runs share the GPU at once (PARALLEL); the 8-cluster table's 2 seeds first, then the 16-cluster rows.
# Writes $OUT/results.md (same columns as docs/RESULTS.md). Numbers and the card: docs/RESULTS.md.
#   bash scripts/repro_move4mnist_gpu.sh                     # defaults below
#   EPOCHS=20 PARALLEL=4 bash scripts/repro_move4mnist_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use scripts/repro_move4mnist_cpu.sh'"
export OUT=${OUT:-runs/repro_gpu}
export SEEDS=${SEEDS:-"0 1"}
export EPOCHS=${EPOCHS:-10}
export SIZE=${SIZE:-64}
export NTRAIN=${NTRAIN:-1800}
export NVAL=${NVAL:-600}
export SPEED=${SPEED:-"2 3"}
export BATCH=${BATCH:-16}
export EVAL_FREQ=${EVAL_FREQ:-1}
export PARALLEL=${PARALLEL:-6}
export WIDE=${WIDE-}  # every configuration shares the GPU
(( PARALLEL >= 1 )) || { echo "PARALLEL must be at least 1" >&2; exit 2; }
export WORKERS=${WORKERS:-$(( $(nproc) / PARALLEL > 1 ? $(nproc) / PARALLEL : 1 ))}
export EXTRA=${EXTRA:-"--amp bf16 --channels_last --device cuda"}
export GEN_WORKERS=${GEN_WORKERS:-$(nproc)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # many processes share the cores
FIRST=${FIRST:-"tsm8 tsm16 tsmall uniform8 slope8 cumulative8"}
ALL=${CONFIGS:-"$FIRST uniform16 slope16 cumulative16"}
start=$(date +%s)
CONFIGS="$FIRST" SUMMARY_FLAGS=--no_profile bash scripts/repro_move4mnist_cpu.sh || true  # a failed run is retried below
CONFIGS="$ALL" bash scripts/repro_move4mnist_cpu.sh
echo "wall: $(( $(date +%s) - start )) s for SEEDS=\"$SEEDS\" EPOCHS=$EPOCHS SIZE=$SIZE NTRAIN=$NTRAIN NVAL=$NVAL" \
     "PARALLEL=$PARALLEL WORKERS=$WORKERS"
