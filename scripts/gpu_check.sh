#!/usr/bin/env bash
# The device check: one prepared run of every CUDA path (AMP fp16/bf16, channels-last, chunking, DDP with
# NCCL through torchrun) and the CUDA benchmark table of docs/PERFORMANCE.md. About 5 minutes on one H100/H200.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
D=/tmp/m4; python3 tools/make_move4mnist.py --out $D --num_train 32 --num_val 16 --seed 0 -j 8 > /dev/null 2>&1
COMMON=(move4mnist RGB --root_path $D --arch resnet18 --pretrain scratch --npb --shift --num_segments 8 --img_size 64
        --scale_size 64 -b 8 -j 4 --epochs 1 --eval-freq 1 --lr 0.01 --device cuda --root_log /tmp/L --root_model /tmp/M)
run() {  # name, extra flags...
  local name=$1; shift
  local t0=$SECONDS
  local res=$(timeout 90 "$@" 2>&1 | tr '\r' '\n' | grep -E "Testing Results|Error" | tail -1)
  printf '| %-44s | %-60s | %4d s |\n' "$name" "${res:-FAILED}" "$((SECONDS - t0))"
}
echo "| run | result | wall |"; echo "|---|---|---|"
run "cumulative F32 G8 fp16 channels_last" python3 main.py "${COMMON[@]}" --cluster cumulative --frames 32 --amp fp16 --channels_last --store_name a
run "slope F=all G8 bf16 chunk 8" python3 main.py "${COMMON[@]}" --cluster slope --frames all --amp bf16 --chunk_frames 8 --store_name b
run "TSM-8 fp16" python3 main.py "${COMMON[@]}" --amp fp16 --store_name c
run "torchrun 1 proc NCCL cumulative fp16" torchrun --standalone --nproc_per_node 1 main.py "${COMMON[@]}" --cluster cumulative --frames 32 --amp fp16 --store_name d
timeout 200 python3 tools/benchmark.py --arch resnet50 --img_size 224 --batch 8 --amp fp16 --device cuda --iters 8 --warmup 3 \
    --configs tsm-8 tsm-all cumulative-8 cumulative-8+chunk --long --long_frames 32 512 --time_long --long_method cumulative \
    --out "$OUT/benchmark_r50_fp16.md"
# the clustering's pieces on CUDA (8 videos of ResNet-50 layer1 at 224 px, fp16); share against the TSM table's step
timeout 60 python3 tools/benchmark_clustering.py --device cuda --dtype float16 --videos 8 --repeat 20 \
    | tee "$OUT/benchmark_clustering_fp16.md"
