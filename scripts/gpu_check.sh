#!/usr/bin/env bash
# The device check: one prepared run for a lent GPU (H100/H200), writing everything under $OUT.
#  1. the clustering's pieces on CUDA, eager and --fused_assign (tools/benchmark_clustering.py)
#  2. ResNet-50 224 px fp16 training steps (tools/benchmark.py): TSM-8, TSM-all, ours-cumulative-8 (eager,
#     only the distances compiled, and the default: distances, rule and mean weights compiled), ours-slope-8
#     and ours-uniform-8; then (LONG=0 skips it) ours-cumulative-8 chunked on 32, 512 and 1024-frame videos
#  3. the Move4MNIST study at the paper's data size (scripts/repro_move4mnist_gpu.sh) until STUDY_S seconds,
#     and meanwhile every CUDA path of main.py once: AMP fp16/bf16, channels-last, chunking, --fused_assign, and
#     DDP with NCCL through torchrun with --on_bad_video skip and a deleted video
# STUDY_S=0 skips 3's study, LONG=0 the long videos; DEADLINE_S=N instead gives the study what is left of N
# seconds from the start. About 3 minutes plus STUDY_S on an H200.
#   OUT=/tmp/gpu_check STUDY_S=300 bash scripts/gpu_check.sh
#   DEADLINE_S=560 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
STUDY_S=${STUDY_S:-300}
export PYTHONUNBUFFERED=1
t0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "
import torch, torchvision
print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())
try:
    import triton; print('triton', triton.__version__)
except ImportError:
    print('no triton: --fused_assign cannot compile for CUDA')" 2>&1 | tee -a "$OUT/card.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$OUT/card.txt"

echo "== 1. clustering pieces ($((SECONDS - t0)) s)"
timeout 150 python3 tools/benchmark_clustering.py --device cuda --dtype float16 --videos 8 --repeat 20 --fused \
    2>&1 | tee "$OUT/benchmark_clustering_fp16.md"

echo "== 2. training steps ($((SECONDS - t0)) s)"
timeout 240 python3 tools/benchmark.py --arch resnet50 --img_size 224 --batch 8 --amp fp16 --device cuda --iters 8 \
    --warmup 3 --configs tsm-8 tsm-all cumulative-8+eager cumulative-8+norule cumulative-8 slope-8 uniform-8 \
    --out "$OUT/benchmark_r50_fp16.md" 2>&1 | tail -n 18
echo "== 2b. long videos, chunked ($((SECONDS - t0)) s)"
[ "${LONG:-1}" = 0 ] || timeout 200 python3 tools/benchmark.py --arch resnet50 --img_size 224 --batch 8 \
    --amp fp16 --device cuda --iters 3 --warmup 1 --configs tsm-8 --long --long_frames 32 512 1024 --time_long \
    --out "$OUT/benchmark_r50_fp16_long.md" 2>&1 | tail -n 8

[ -n "${DEADLINE_S:-}" ] && STUDY_S=$(( DEADLINE_S - (SECONDS - t0) - 30 ))
echo "== 3. study for $STUDY_S s, and main.py's CUDA paths beside it ($((SECONDS - t0)) s)"
D=/tmp/m4; python3 tools/make_move4mnist.py --out $D --num_train 32 --num_val 16 --seed 0 -j 8 2>&1 | tail -n 1
B=/tmp/m4bad; rm -rf $B; cp -r $D $B; rm -rf "$B/$(head -n 1 $B/train_videofolder.txt | cut -d' ' -f1)"
COMMON=(move4mnist RGB --arch resnet18 --pretrain scratch --npb --shift --num_segments 8 --img_size 64
        --scale_size 64 -b 8 -j 2 --epochs 1 --eval-freq 1 --lr 0.01 --device cuda --root_log /tmp/L --root_model /tmp/M)
path() {  # name, command...: the lines that say how it went, and its exit status
  local name=$1; shift
  local s=$SECONDS res rc
  res=$(timeout 150 "$@" 2>&1 | tr '\r' '\n' | grep -E "Testing Results|bad videos|Error|error" | tail -2 | tr '\n' ' '
        exit "${PIPESTATUS[0]}")
  rc=$?
  printf '| %s | %s | %d | %d s |\n' "$name" "${res:-no result}" "$rc" "$((SECONDS - s))"
}
(
  echo "| run | result | exit | wall |"; echo "|---|---|---|---|"
  path "cumulative F32 G8, fp16, channels-last" python3 main.py "${COMMON[@]}" --root_path $D --cluster cumulative \
      --frames 32 --amp fp16 --channels_last --store_name a
  path "slope F=all G8, bf16, chunks of 8" python3 main.py "${COMMON[@]}" --root_path $D --cluster slope --frames all \
      --amp bf16 --chunk_frames 8 --store_name b
  path "TSM-8, fp16" python3 main.py "${COMMON[@]}" --root_path $D --amp fp16 --store_name c
  path "torchrun NCCL, cumulative fp16 --fused_assign, skip 1 deleted video" torchrun --standalone \
      --nproc_per_node 1 main.py "${COMMON[@]}" --root_path $B --cluster cumulative --frames 32 --amp fp16 \
      --fused_assign on --on_bad_video skip --store_name d
) > "$OUT/cuda_paths.md" 2>&1 &
paths=$!
if (( STUDY_S > 0 )); then
  OUT=/tmp/study SUMMARY_FLAGS=--no_profile timeout "$STUDY_S" bash scripts/repro_move4mnist_gpu.sh \
      > "$OUT/study.log" 2>&1
  echo "study: exit $? after $((SECONDS - t0)) s (124: stopped at STUDY_S)" | tee -a "$OUT/study.log"
  python3 tools/summarize_study.py /tmp/study tsm8 tsm16 tsmall uniform8 slope8 cumulative8 uniform16 slope16 \
      cumulative16 --no_profile > "$OUT/study_results.md" 2>&1
  tar czf "$OUT/study_logs.tgz" -C /tmp/study log $(cd /tmp/study && ls *.out 2>/dev/null) 2>/dev/null
  cat "$OUT/study_results.md"; tail -n 3 "$OUT/study.log"
fi
wait $paths
cat "$OUT/cuda_paths.md"
echo "total $((SECONDS - t0)) s"
