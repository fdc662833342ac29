#!/usr/bin/env bash
# The second device check: one prepared run for a lent GPU (H100/H200), writing everything under $OUT.
#  1. the decisive study (scripts/repro_decisive_cpu.sh: TSM-2 start, then Table 1's 9 configurations, 3 seeds,
#     the CPU study's recipe at 32 px, fp32) at the paper's data size, 1,800/600 videos, many runs at once on
#     the GPU, until AFTER_S (130) seconds before DEADLINE_S; then its table, the paired orderings and the
#     runs' logs (validation top-1 per epoch and per-video scores) as $OUT/decisive_logs.tgz
#  2. the survey's clip backbones on CUDA, bf16 training steps (tools/benchmark.py): X3D-XS at 182 px and
#     SlowFast-R50 (alpha 4) at 224 px, each as the plain clip of F frames (tsm-all) against ours-cumulative-8
#     (X3D: 8 cluster means after stage 1; SlowFast: 8 cluster means feed the slow pathway, the fast keeps F)
# About 10 minutes on an H200 (the device tool's tree has no installed package: export PYTHONPATH=$PWD there):
#   OUT=/tmp/gpu_check DEADLINE_S=575 bash scripts/gpu_check_survey.sh
# On 2026-12-04, 9 runs at once (one loader worker each) finished 9 of the 27 runs in the 10 minutes (the
# loading was the bottleneck); then 14 at once finished all 27 and the starting points in 454 s (BENCH=0):
#   SEEDS="0 1 2" PARALLEL=14 BENCH=0 DEADLINE_S=580 AFTER_S=70 OUT=$OUT bash scripts/gpu_check_survey.sh
# Each run stores its per-video validation scores as it finishes (SCORES), so the orderings need no evaluation.
# docs/PERFORMANCE.md and docs/RESULTS.md hold what it gave.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
DEADLINE_S=${DEADLINE_S:-575}
PARALLEL=${PARALLEL:-14}
DEV=${DEV:-cuda}  # DEV=cpu BENCH=0 NTRAIN=32 NVAL=16 EPOCHS=1 WARM_EPOCHS=1 SEEDS=0: a dry run of the pipeline
export PYTHONUNBUFFERED=1
t0=$SECONDS
left() { echo $(( DEADLINE_S - (SECONDS - t0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt" || true
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
    2>&1 | tee -a "$OUT/card.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$OUT/card.txt"

echo "== 1. the decisive study at the paper's data size, $(left) s left ($((SECONDS - t0)) s)"
D=/tmp/decisive
OUT=$D NTRAIN=${NTRAIN:-1800} NVAL=${NVAL:-600} PARALLEL=$PARALLEL WIDE="" WORKERS=1 OMP_NUM_THREADS=1 \
    GEN_WORKERS=$(nproc) EXTRA="--device $DEV" SCORES=$DEV SUMMARY_FLAGS=--no_profile \
    timeout $(( $(left) - ${AFTER_S:-130} )) bash scripts/repro_decisive_cpu.sh > "$OUT/decisive.log" 2>&1
rc=$?; pkill -f "main.py move4mnist .*--root_path $D/" || true  # a stopped study leaves no run on the GPU
echo "study: exit $rc at $((SECONDS - t0)) s (124: stopped at the deadline)" | tee -a "$OUT/decisive.log"
timeout 15 python3 tools/summarize_study.py $D --decisive --warm tsm2 --no_profile > "$OUT/decisive_results.md" 2>&1
cat "$OUT/decisive_results.md"
timeout 50 python3 tools/paired_orderings.py $D --device $DEV > "$OUT/decisive_orderings.md" 2>&1
cat "$OUT/decisive_orderings.md"
tar czf "$OUT/decisive_logs.tgz" -C $D log settings.txt $(cd $D && ls *.out 2> /dev/null) 2> /dev/null
ls -la "$OUT"

echo "== 2. clip backbones, bf16 training steps ($((SECONDS - t0)) s)"
bench() {  # arch, crop, frames, batch
  timeout $(( $(left) > 90 ? 45 : 30 )) python3 tools/benchmark.py --arch "$1" --img_size "$2" --frames "$3" \
      --batch "$4" --amp bf16 --device cuda --iters 3 --warmup 1 --configs tsm-all cumulative-8 \
      --out "$OUT/benchmark_$1.md" 2>&1 | tail -n 6
}
if [ "${BENCH:-1}" = 1 ]; then
  bench x3d_xs 182 32 8
  bench slowfast_r50 224 32 4
fi

echo "total $((SECONDS - t0)) s"
