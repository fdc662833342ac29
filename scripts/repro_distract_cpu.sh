#!/usr/bin/env bash
# Accuracy against the fraction of distracting frames (issue 22; no anchor ran it): for each P in FRACTIONS,
# a Move4MNIST set in which exactly P% of each video's 32 frames are distracting (the generator's runs of black,
# background-only or still-digit frames: --share P/100 P/100, in 5-8 runs; 0%: no runs), then TSM-8, TSM-all,
# ours-cumulative-8 and ours-uniform-8, fine-tuned from a TSM-2 starting point (START, below), with the decisive
# study's recipe (scripts/repro_decisive_cpu.sh: AdamW lr 1e-3, wd 1e-4, cosine, batch 16, dropout 0.3, 32 px,
# fp32, 6 + 6 epochs, one run at a time on all the cores). The paper's motivation predicts that sparse sampling
# (TSM-8) loses the informative frames as they get rare, and that clustering all the frames does not.
# START=shared (the default): for each seed one TSM-2, trained from scratch on the 0% set ($ROOT/start,
# WARM_EPOCHS epochs), is the starting point of every share, so that the shares differ only in their data.
# START=per_share:
# each share's runs start from a TSM-2 trained on that share's own set (the first, reduced sweep; at 50 and 75%
# those starting points failed, and the models fine-tuned from them with them).
# Output: $ROOT/start/ (the shared starting points), $ROOT/f<P>/ (a study folder of scripts/repro_move4mnist_cpu.sh,
#   with its data in $ROOT/f<P>/data),
#   $ROOT/results.md (tools/plot_distract.py's table: top-1 mean ± std per model and fraction, seeds took off)
#   and $FIGURE (top-1 against the fraction, one line a model, error bars = std over seeds).
# Settings (env): ROOT=runs/distract, FRACTIONS="0 25 50 75", SEEDS="0 1 2", CONFIGS="tsm8 tsmall cumulative8
# uniform8", PLOT_CONFIGS, EPOCHS=6, START=shared, WARM=tsm2, WARM_EPOCHS=6,
# FIGURE=docs/figures/move4mnist_distract_cpu.png,
# and any of scripts/repro_move4mnist_cpu.sh's (NTRAIN=960, NVAL=240, SPEED="2 3", SIZE=32, PARALLEL=1, ...).
# JOBS=1: seed by seed, every fraction: a partial sweep already has whole curves. JOBS > 1 (a GPU): the starting
# points of all the seeds at once, then JOBS fractions side by side, each running all the seeds' models PARALLEL at
# a time (scripts/gpu_check_distract.sh; each fraction's output in $ROOT/f<P>.out). Run it again and it skips every
# finished run.
# Motion: the digit advances SPEED pixels per target frame (64 px frames, crops of 32 px), but its path must stay
# inside the frame, so the generator caps the speed at 36 / (target frames - 1) px: 1.16 px at 0% (32 target
# frames), 1.57 at 25%, 2.4 at 50%, none at 75% (2-3 px). Fewer distractors thus also mean slower motion
# between adjacent frames (over the whole video the digit moves 36 px at 0%, 14-21 px at 75%).
# Time on 2 idle cores, measured in the decisive study (6-epoch runs incl. validation): TSM-2 40 s, TSM-8 78 s,
# ours-cumulative-8 and ours-uniform-8 about 165 s each, TSM-all about 3.3x TSM-8 (258 s); so about 750 s per seed and
# fraction with 6 epochs and all 4 models, 4 fractions x 3 seeds = 2.5 h (data generation: 7 s a set).
# The sweep of docs/RESULTS.md (START=shared; the first two calls on an Intel Xeon, 44 + 26 min on 2 idle cores,
# before RECORD existed, their rows entered later; the last three on an AMD EPYC, 26 + 37 + 24 min, in a new
# checkout with ROOT=runs/distract_amd RECORD=docs/distract_runs.csv MACHINE="AMD EPYC without AMX"):
#   SEEDS=0 bash scripts/repro_distract_cpu.sh
#   SEEDS=1 CONFIGS="tsm8 cumulative8 uniform8" PLOT_CONFIGS="tsm8 tsmall cumulative8 uniform8" \
#       bash scripts/repro_distract_cpu.sh
#   SEEDS=1 CONFIGS=tsmall bash scripts/repro_distract_cpu.sh
#   SEEDS=2 CONFIGS="tsm8 cumulative8 uniform8" bash scripts/repro_distract_cpu.sh
#   SEEDS=2 CONFIGS=tsmall bash scripts/repro_distract_cpu.sh
# PLOT_CONFIGS (default CONFIGS): the models the figure and table show (runs of earlier calls included).
# RECORD=docs/distract_runs.csv MACHINE="AMD EPYC without AMX": every finished run's top-1 is added to that CSV (one
# row a run, MACHINE its machine column), and the table and figure show the CSV's other runs too (tools/plot_distract.py
# --record): runs of other sessions and machines, whose folders are gone, still count.
# Expected figures: docs/RESULTS.md, "Distracting frames". Top-1 % at 0 / 25 / 50 / 75%, mean over seeds 0-2:
# TSM-8 100 / 99.3 / 91.4 / 31.4; ours-cumulative-8 100 / 99.7 / 98.2 / 79.4; ours-uniform-8 100 / 99.9 / 98.8 / 71.4;
# TSM-all 99.7 / 99.3 / 99.7 / 79.7 (at 75%: 95.8, 47.1, 96.3; the TSM-2 starting points: 99-100 on the 0% set).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${ROOT:-runs/distract}
FRACTIONS=${FRACTIONS:-"0 25 50 75"}
FIGURE=${FIGURE:-docs/figures/move4mnist_distract_cpu.png}
ALL_SEEDS=${SEEDS:-"0 1 2"}
export EPOCHS=${EPOCHS:-6}
export WARM=${WARM-tsm2}
export WARM_EPOCHS=${WARM_EPOCHS:-6}
export CONFIGS=${CONFIGS:-"tsm8 tsmall cumulative8 uniform8"}
export EVAL_FREQ=${EVAL_FREQ:-1}
export PARALLEL=${PARALLEL:-1}
JOBS=${JOBS:-1}
(( JOBS >= 1 )) || { echo "JOBS must be at least 1" >&2; exit 2; }
export EXTRA=${EXTRA-}
export WIDE=${WIDE-}
export SUMMARY_FLAGS=${SUMMARY_FLAGS:-"--no_profile"}
START=${START:-shared}
[[ $START == shared || $START == per_share ]] || { echo "START must be shared or per_share, not $START" >&2; exit 2; }
NTRAIN=${NTRAIN:-960}
NVAL=${NVAL:-240}
SPEED=${SPEED:-"2 3"}
for p in $FRACTIONS; do  # a misspelt fraction stops here, before any run
  [[ $p =~ ^[0-9]+$ ]] && (( p < 100 )) || { echo "FRACTIONS: $p is not a whole percentage below 100" >&2; exit 2; }
  (( p * 32 % 100 == 0 )) || { echo "FRACTIONS: $p% of 32 frames is not a whole number of frames" >&2; exit 2; }
done
data() {  # the set of P% distracting frames in $ROOT/f<P>/data, unless it is there
  local p=$1 out=$ROOT/f$1 share runs="5 8"
  [ -f "$out/data/val_videofolder.txt" ] && return 0
  share=$(awk "BEGIN { print $p / 100 }")
  (( p == 0 )) && runs="0 0"
  python tools/make_move4mnist.py --out "$out/data" --num_train "$NTRAIN" --num_val "$NVAL" --seed 0 \
      --speed $SPEED --share "$share" "$share" --runs $runs -j "${GEN_WORKERS:-2}"
}
start=$(date +%s)
failed=0
[ "$START" = shared ] && [ -n "$WARM" ] && shared=1 || shared=0
warm_dir=""; (( shared )) && warm_dir=$ROOT/start/checkpoint
starts() {  # $1: seeds, $2: runs at once; one starting point a seed, made on the 0% set, for every share
  data 0
  echo "== the starting point: $WARM on the 0% set, seeds $1"
  OUT=$ROOT/start DATA=$ROOT/f0/data SEEDS=$1 CONFIGS=$WARM WARM="" EPOCHS=$WARM_EPOCHS PARALLEL=$2 \
      NTRAIN=$NTRAIN NVAL=$NVAL SPEED=$SPEED bash scripts/repro_move4mnist_cpu.sh
}
share() {  # $1: the fraction, $2: seeds
  echo "== $1% distracting frames, seeds $2"
  OUT=$ROOT/f$1 DATA=$ROOT/f$1/data SEEDS=$2 WARM_DIR=$warm_dir NTRAIN=$NTRAIN NVAL=$NVAL SPEED=$SPEED \
      bash scripts/repro_move4mnist_cpu.sh
}
if (( JOBS > 1 )); then  # every starting point at once, then JOBS shares side by side, each with all the seeds
  for p in $FRACTIONS; do data "$p"; done
  if (( shared )); then starts "$ALL_SEEDS" "$JOBS" || failed=1; fi
  pids=()
  for p in $FRACTIONS; do
    while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || true; done
    share "$p" "$ALL_SEEDS" > "$ROOT/f$p.out" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  for p in $FRACTIONS; do grep ': Testing Results' "$ROOT/f$p.out" | sed "s/^/f$p /" || true; done
else  # seed by seed, every share: a partial sweep already has whole curves
  for seed in $ALL_SEEDS; do
    if (( shared )); then starts "$seed" "$PARALLEL" || { failed=1; continue; }; fi
    for p in $FRACTIONS; do
      data "$p"
      share "$p" "$seed" || failed=1
    done
  done
fi
python tools/plot_distract.py "$ROOT" --fractions $FRACTIONS --configs ${PLOT_CONFIGS:-$CONFIGS} --figure "$FIGURE" \
    ${RECORD:+--record "$RECORD" --machine "${MACHINE:-}"} > "$ROOT/results.md"
cat "$ROOT/results.md"
echo "wall: $(( $(date +%s) - start )) s for this call"
exit $failed
