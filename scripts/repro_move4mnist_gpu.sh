#!/usr/bin/env bash
# The Move4MNIST study at the paper's size on one GPU (paper Table 1: 1,800/600 videos of 32 frames), prepared
# to fit a 10-minute device slot: the CPU study's models and recipe (scripts/repro_move4mnist_cpu.sh: ResNet-18
# from scratch, AdamW, cosine, the same faster digits) at 112 px, bf16 and channels-last, 2 seeds.
# Writes $OUT/results.md (same columns as docs/RESULTS.md) and prints the card. Not yet run: no GPU session
# has had device time for it; until one does, docs/RESULTS.md has the CPU table only.
#   bash scripts/repro_move4mnist_gpu.sh                 # defaults below
#   EPOCHS=10 SIZE=64 bash scripts/repro_move4mnist_gpu.sh   # a shorter slot
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use scripts/repro_move4mnist_cpu.sh'"
export OUT=${OUT:-runs/repro_gpu}
export SEEDS=${SEEDS:-"0 1"}
export EPOCHS=${EPOCHS:-20}
export SIZE=${SIZE:-112}
export NTRAIN=${NTRAIN:-1800}
export NVAL=${NVAL:-600}
export SPEED=${SPEED:-"2 3"}
export WORKERS=${WORKERS:-$(( $(nproc) > 12 ? 12 : $(nproc) ))}
export EXTRA=${EXTRA:-"--amp bf16 --channels_last --device cuda"}
start=$(date +%s)
bash scripts/repro_move4mnist_cpu.sh
echo "wall: $(( $(date +%s) - start )) s for SEEDS=\"$SEEDS\" EPOCHS=$EPOCHS SIZE=$SIZE NTRAIN=$NTRAIN NVAL=$NVAL"
