#!/usr/bin/env bash
# A device check for a lent GPU (H100/H200), writing everything under $OUT: the distractor sweep
# (scripts/repro_distract_cpu.sh: 0, 25, 50 and 75% of each video's 32 frames distracting; TSM-8, TSM-all,
# ours-cumulative-8 and ours-uniform-8 fine-tuned from one TSM-2 starting point a seed, made on the 0% set; the
# decisive study's recipe, 960/240 videos, 32 px, fp32, 6 + 6 epochs) with 3 seeds, all the seeds' starting points
# at once, then the 4 fractions side by side (JOBS=4), each with PARALLEL runs at once, until AFTER_S (60) seconds
# before DEADLINE_S; then the table, the figure (top-1 against the fraction, error bars over seeds), every run's
# top-1 (distract_runs.csv, as docs/distract_runs.csv) and every run's log.
# About 8 minutes on an H200 (the device tool's tree has no installed package: export PYTHONPATH=$PWD there):
#   export PYTHONPATH=$PWD; OUT=$OUT DEADLINE_S=580 bash scripts/gpu_check_distract.sh
# Run it again on the same machine and it skips every finished run (the sweep stays in /tmp/distract).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
DEADLINE_S=${DEADLINE_S:-580}
DEV=${DEV:-cuda}  # DEV=cpu NTRAIN=8 NVAL=4 EPOCHS=1 WARM_EPOCHS=1 SEEDS=0: a dry run of the pipeline
R=${ROOT:-/tmp/distract}
export PYTHONUNBUFFERED=1
t0=$SECONDS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt" || true
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" \
    2>&1 | tee -a "$OUT/card.txt"

card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -1)  # distract_runs.csv's machine
card=${card:-$DEV}

echo "== the distractor sweep, $((DEADLINE_S - (SECONDS - t0))) s left"
ROOT=$R SEEDS=${SEEDS:-"0 1 2"} JOBS=${JOBS:-4} PARALLEL=${PARALLEL:-4} WORKERS=1 OMP_NUM_THREADS=1 \
    RECORD="$OUT/distract_runs.csv" MACHINE="$card" \
    GEN_WORKERS=$(nproc) EXTRA="--device $DEV" FIGURE="$OUT/move4mnist_distract_gpu.png" \
    timeout $(( DEADLINE_S - (SECONDS - t0) - ${AFTER_S:-60} )) bash scripts/repro_distract_cpu.sh \
    > "$OUT/distract.log" 2>&1
rc=$?; pkill -f "main.py move4mnist .*--root_path $R/" || true  # a stopped sweep leaves no run on the GPU
echo "sweep: exit $rc at $((SECONDS - t0)) s (124: stopped at the deadline)" | tee -a "$OUT/distract.log"
if [ ! -s "$OUT/move4mnist_distract_gpu.png" ]; then  # stopped: the table and figure of what finished
  models=${PLOT_CONFIGS:-${CONFIGS:-tsm8 tsmall cumulative8 uniform8}}
  timeout 30 python3 tools/plot_distract.py "$R" --configs $models ${FRACTIONS:+--fractions $FRACTIONS} \
      --figure "$OUT/move4mnist_distract_gpu.png" --record "$OUT/distract_runs.csv" --machine "$card" \
      > "$R/results.md" 2>&1
fi
cp "$R/results.md" "$OUT/distract_results.md" 2>/dev/null; cat "$OUT/distract_results.md"
(cd "$R" && tar czf "$OUT/distract_logs.tgz" $(ls -d start/log f*/log f*/settings.txt f*.out 2> /dev/null))
ls -la "$OUT"
echo "total $((SECONDS - t0)) s"
