#!/usr/bin/env bash
# CPU-scale Move4MNIST study (paper Table 1 at a size a 2-core CPU can train from scratch).
# Trains TSM-8, TSM-16, TSM-all and ours-{uniform,slope,cumulative}-8 for each seed, evaluates each best
# checkpoint, profiles each model at the paper's size (ResNet-18, 224 px) and writes one table:
#   $OUT/results.md   (top-1 mean ± std over seeds, GMACs/video, activation MB/video, seconds/epoch)
# Settings (env): SEEDS="0 1", EPOCHS=18, SIZE=32, NTRAIN=960, NVAL=240, SPEED="2 3", CONFIGS="tsm8 ...",
# BATCH=16, EVAL_FREQ=2, WORKERS=0, EXTRA (more main.py flags for every run; default "--amp bf16 --channels_last"
# on a CPU with AMX bf16 units, else ""; scripts/repro_move4mnist_gpu.sh sets its own), PARALLEL=2 (runs at
# once; each run's output is in $OUT/<run>.out), THREADS (each run's intra-op threads, OMP_NUM_THREADS;
# default: the cores over PARALLEL), WIDE="tsmall" (configurations that run alone on all the cores, with
# WIDE_WORKERS=2 loader workers, also with PARALLEL=1, whatever THREADS says; "" for none, e.g. on a GPU),
# GEN_WORKERS (data generation processes, default 2), SUMMARY_FLAGS="" (e.g. --no_profile), SCORES="" (cpu or
# cuda: each run, as it finishes, also stores its best checkpoint's per-video validation scores on that device,
# $OUT/log/<run>/val_scores.npz, which tools/paired_orderings.py then reuses instead of evaluating every run),
# RECIPE="--optimizer adamw --lr 0.001 --wd 1e-4 --lr_type cos" (the optimizer and schedule flags of every run),
# WARM="" (a configuration, e.g. tsm2, trained first for each seed, for WARM_EPOCHS epochs; every other run of
# that seed then starts from its best checkpoint with --tune_from: a starting point made from this data;
# WARM_THREADS: its threads, default the cores over the seeds trained at once; WARM_DIR: a checkpoint folder that
# holds the starting points already, <WARM_DIR>/<WARM>_s<seed>/ckpt.best.pth.tar, trained elsewhere, e.g. on
# another data set: then none is trained here),
# MODALITY=RGB (or Flow: the data then needs tools/extract_flow.py's frames), DATA="$OUT/data" (the data set's
# folder, generated there when it holds no lists; scripts/repro_two_stream_cpu.sh shares one between streams).
# $OUT/settings.txt records the settings that decide the results; a folder made with others is refused.
# From scratch (no ImageNet weights offline) the digit has to move faster than in the paper's data for a
# small network to learn the direction in minutes; SPEED="0.5 1.0" is the default data set's motion.
# Two runs of one thread each, loading in their own process (WORKERS=0), got about 1.15x the throughput of one
# run on both cores for the clustered models over whole runs: at 32 px their layers split poorly over two
# threads. TSM-all (32 frames through every layer) does not (two at once: 0.9x), so it runs alone on all the
# cores, where 2 loader workers saved it about 12% (WIDE). With PARALLEL > 1 the longest configurations start first,
# so that the end of the study is not one long run on one core. bf16 with channels-last took a pair of
# clustered runs from 1,031-1,101 s to 701-744 s on this project's 2-core Xeon (AMX), with the same take-off
# and top-1; bf16 and the WIDE loader workers together took the study from 112 to 90 min.
# Time on 2 idle cores, the default 2 seeds: docs/RESULTS.md has the wall time and the numbers.
set -euo pipefail
source "$(dirname "$0")/common.sh"  # cd to the repository; claim_folder, move4mnist_data
OUT=${OUT:-runs/repro_cpu}
SEEDS=${SEEDS:-"0 1"}
EPOCHS=${EPOCHS:-18}
SIZE=${SIZE:-32}
NTRAIN=${NTRAIN:-960}
NVAL=${NVAL:-240}
SPEED=${SPEED:-"2 3"}
CONFIGS=${CONFIGS:-"tsm8 tsm16 tsmall uniform8 slope8 cumulative8"}
WORKERS=${WORKERS:-0}
# bf16 autocast and channels-last where the CPU has AMX bf16 units (about 1/3 faster per clustered run here);
# fp32 elsewhere, where bf16 would be emulated. An explicit EXTRA (even "") decides instead.
if [ -z "${EXTRA+set}" ]; then
  EXTRA=$(grep -qw amx_bf16 /proc/cpuinfo 2> /dev/null && echo "--amp bf16 --channels_last" || true)
fi
PARALLEL=${PARALLEL:-2}
(( PARALLEL >= 1 )) || { echo "PARALLEL must be at least 1" >&2; exit 2; }
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc itself obeys OMP_NUM_THREADS
THREADS=${THREADS:-${OMP_NUM_THREADS:-$(( CORES / PARALLEL > 1 ? CORES / PARALLEL : 1 ))}}
WIDE=${WIDE-tsmall}
WIDE_WORKERS=${WIDE_WORKERS:-2}
export OMP_NUM_THREADS=$THREADS
BATCH=${BATCH:-16}
EVAL_FREQ=${EVAL_FREQ:-2}
SUMMARY_FLAGS=${SUMMARY_FLAGS:-}
DEFAULT_RECIPE="--optimizer adamw --lr 0.001 --wd 1e-4 --lr_type cos"
RECIPE=${RECIPE:-$DEFAULT_RECIPE}
DATA=${DATA:-$OUT/data}
MODALITY=${MODALITY:-RGB}
# What decides the results; a folder that holds runs made with other settings is not silently reused.
# (loader workers change the augmentation's random stream, so WIDE and WIDE_WORKERS are among them when WIDE
# runs load otherwise than the others; thread counts are not recorded)
SETTINGS="SIZE=$SIZE NTRAIN=$NTRAIN NVAL=$NVAL SPEED=$SPEED EPOCHS=$EPOCHS BATCH=$BATCH EVAL_FREQ=$EVAL_FREQ WORKERS=$WORKERS EXTRA=$EXTRA"
[ -n "$WIDE" ] && (( WIDE_WORKERS != WORKERS )) && SETTINGS="$SETTINGS WIDE=$WIDE WIDE_WORKERS=$WIDE_WORKERS"
[ "$RECIPE" != "$DEFAULT_RECIPE" ] && SETTINGS="$SETTINGS RECIPE=$RECIPE"  # old study folders hold the default
[ "$MODALITY" != RGB ] && SETTINGS="$SETTINGS MODALITY=$MODALITY"
WARM=${WARM:-}
WARM_EPOCHS=${WARM_EPOCHS:-$EPOCHS}
WARM_DIR=${WARM_DIR:-}
[ -n "$WARM" ] && SETTINGS="$SETTINGS WARM=$WARM WARM_EPOCHS=$WARM_EPOCHS"
[ -n "$WARM_DIR" ] && SETTINGS="$SETTINGS WARM_DIR=$WARM_DIR"
flags() {  # the model flags of a configuration name
  case $1 in
    tsmall) echo "--num_segments 32" ;;
    tsm2|tsm4|tsm8|tsm16) echo "--num_segments ${1#tsm}" ;;
    uniform8|slope8|cumulative8|uniform16|slope16|cumulative16)
      echo "--cluster ${1%%[0-9]*} --frames 32 --num_segments ${1##*[a-z]}" ;;
    *) echo "unknown configuration $1" >&2; exit 2 ;;
  esac
}
cost() {  # rank by training time, longest first (frames through the whole network, then cluster count)
  case $1 in
    tsmall) echo 0 ;; uniform16|slope16|cumulative16) echo 1 ;; tsm16) echo 3 ;; tsm8) echo 4 ;; *) echo 2 ;;
  esac
}
for cfg in $WARM $CONFIGS; do flags "$cfg" > /dev/null || exit 2; done  # a misspelt name stops here, before any run
claim_folder "$OUT" "$SETTINGS" "a study" || exit 2
start=$(date +%s)
move4mnist_data "$DATA" "$NTRAIN" "$NVAL" "$SPEED"
COMMON=(move4mnist "$MODALITY" --root_path "$DATA" --arch resnet18 --pretrain scratch --npb --shift --img_size "$SIZE"
        --scale_size "$SIZE" --dropout 0.3 -b "$BATCH" $RECIPE --epochs "$EPOCHS" --eval-freq "$EVAL_FREQ"
        --root_log "$OUT/log" --root_model "$OUT/checkpoint")
one() {  # train (resuming a killed run), evaluate the best checkpoint, record the wall time; $3: threads, $4: workers
  local cfg=$1 seed=$2 name="${1}_s${2}" threads=${3:-$THREADS} workers=${4:-$WORKERS} start warm=()
  if [ "$cfg" = "$WARM" ]; then
    warm=(--epochs "$WARM_EPOCHS")
  elif [ -n "$WARM" ]; then
    warm=(--tune_from "${WARM_DIR:-$OUT/checkpoint}/${WARM}_s${seed}/ckpt.best.pth.tar")
  fi
  local run=(python main.py "${COMMON[@]}" -j "$workers" $(flags "$cfg") "${warm[@]}" $EXTRA --seed "$seed"
             --store_name "$name")
  start=$(date +%s)
  if ! OMP_NUM_THREADS=$threads "${run[@]}" \
      $( [ -f "$OUT/checkpoint/$name/ckpt.pth.tar" ] && echo --resume "$OUT/checkpoint/$name/ckpt.pth.tar" ) \
      > "$OUT/$name.out" 2>&1; then
    echo "$name: training failed, last lines of $OUT/$name.out:"; tail -n 5 "$OUT/$name.out"; return 1
  fi
  if ! OMP_NUM_THREADS=$threads "${run[@]}" --evaluate --resume "$OUT/checkpoint/$name/ckpt.best.pth.tar" \
      2>/dev/null | tail -n 1 > "$OUT/log/$name/eval.txt"; then
    echo "$name: evaluation failed"; return 1
  fi
  if [ -n "${SCORES:-}" ] && ! OMP_NUM_THREADS=$threads python tools/paired_orderings.py "$OUT" --cache "$name" \
      --device "$SCORES" > /dev/null 2>> "$OUT/$name.out"; then
    echo "$name: storing its per-video scores failed, see $OUT/$name.out"; return 1
  fi
  echo $(( $(date +%s) - start )) > "$OUT/log/$name/done"
  echo "$name: $(cat "$OUT/log/$name/eval.txt")"
}
failed=0
pids=()
trap 'kill $(jobs -p) 2> /dev/null || true' EXIT  # a stopped study stops its runs too
runs=()
if (( PARALLEL > 1 )); then  # longest first: the slots stay busy to the end
  for cfg in $(for c in $CONFIGS; do echo "$(cost "$c") $c"; done | sort -s -n -k1,1 | cut -d' ' -f2); do
    for seed in $SEEDS; do runs+=("${cfg}_s${seed}"); done
  done
else  # seed by seed: a finished seed is a whole table
  for seed in $SEEDS; do for cfg in $CONFIGS; do runs+=("${cfg}_s${seed}"); done; done
fi
if [ -n "$WARM" ] && [ -n "$WARM_DIR" ]; then  # made elsewhere: each must be there
  for seed in $SEEDS; do
    [ -f "$WARM_DIR/${WARM}_s$seed/ckpt.best.pth.tar" ] \
      || { echo "WARM_DIR: no starting point $WARM_DIR/${WARM}_s$seed/ckpt.best.pth.tar" >&2; exit 2; }
  done
elif [ -n "$WARM" ]; then  # the starting points first, the seeds side by side, sharing the cores
  seeds=($SEEDS)
  slots=$(( ${#seeds[@]} < PARALLEL ? ${#seeds[@]} : PARALLEL ))
  warm_threads=${WARM_THREADS:-$(( CORES / slots > 1 ? CORES / slots : 1 ))}
  echo "warm start: ${WARM} for ${WARM_EPOCHS} epochs, seeds ${SEEDS} ($warm_threads threads each)"
  for seed in $SEEDS; do
    [ -f "$OUT/checkpoint/${WARM}_s$seed/ckpt.pth.tar" ] && [ -f "$OUT/log/${WARM}_s$seed/done" ] && continue
    while (( $(jobs -rp | wc -l) >= slots )); do wait -n || true; done
    one "$WARM" "$seed" "$warm_threads" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { echo "a warm start failed: no run can start from it" >&2; exit 1; }; done
  pids=()
fi
alone=${WIDE:+; alone on $CORES with $WIDE_WORKERS loader workers: $WIDE}
echo "runs: ${runs[*]} (PARALLEL=$PARALLEL, $THREADS threads each$alone)"
for name in "${runs[@]}"; do
  cfg=${name%_s*} seed=${name##*_s}
  [ -f "$OUT/checkpoint/$name/ckpt.pth.tar" ] && [ -f "$OUT/log/$name/done" ] && continue
  if [[ " $WIDE " == *" $cfg "* ]]; then  # alone, on all the cores, with loader workers
    while (( $(jobs -rp | wc -l) > 0 )); do wait -n || true; done
    one "$cfg" "$seed" "$CORES" "$WIDE_WORKERS" || { (( PARALLEL > 1 )) || exit 1; failed=1; }
  elif (( PARALLEL > 1 )); then  # runs share the machine: start when a slot is free
    while (( $(jobs -rp | wc -l) >= PARALLEL )); do wait -n || true; done
    one "$cfg" "$seed" &
    pids+=($!)
  else
    one "$cfg" "$seed" || exit 1
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done  # every run's own exit status, however early it ended
here=$WARM; [ -n "$WARM_DIR" ] && here=""  # the starting points' row, where they were trained here
python tools/summarize_study.py "$OUT" $here $CONFIGS $SUMMARY_FLAGS ${here:+--warm $WARM} > "$OUT/results.md"
cat "$OUT/results.md"
echo "wall: $(( $(date +%s) - start )) s for this call, data generation included"
exit $failed
