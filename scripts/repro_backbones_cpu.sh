#!/usr/bin/env bash
# Clip backbones (3D CNNs, issue 18) on the quickstart's Move4MNIST data at CPU scale, one seed, from scratch
# (no download is possible here): each configuration is trained with the quickstart's recipe, its best checkpoint
# evaluated from disk with main.py --evaluate, and $OUT/results.md gives top-1, GMACs per video at the inputs used
# and at the backbone's standard clip (tools/profile_model.py --meta), seconds per epoch, and whether the run
# took off (validation top-1 above 50% at some epoch). docs/RESULTS.md, "Clip backbones", has the figures.
# Configuration names (CONFIGS):
#   ARCH          a clip of CLIP frames spread over the 32-frame video (--num_segments CLIP --sample_rate 32/CLIP)
#   ARCH-T        the same with T frames (T divides 32; ARCH-32 is all frames, every layer)
#   ARCH-cumG     all 32 frames through the stem and stage 1, cumulative clustering into G, the later stages on
#                 the G-step clip (--cluster cumulative --frames 32 --num_segments G); also uniformG, slopeG
#   c3d           C3D as published: 16 frames (stride 2) at 112 px, the only input its fc6 takes
# ARCH is any clip --arch (python -c "import archs; print(archs.arch_names())"). Every other row is cropped at SIZE.
# Settings (env): OUT=runs/backbones_cpu, SEED=0, EPOCHS=6, SIZE=32, CLIP=8, CONFIGS (below), NTRAIN=960,
# NVAL=240, SPEED="2 3" (the quickstart's generator settings), DATA="$OUT/data" (generated there when it holds no
# lists: DATA=runs/quickstart/data reuses the quickstart's), BATCH=16, RECIPE="--optimizer adamw --lr 0.001
# --wd 1e-4 --lr_type cos" (the quickstart's), EXTRA (more main.py flags for every run; default "--amp bf16" on a
# CPU with AMX bf16 units, else "": fp32), WORKERS=0, PARALLEL=2 (runs at once, longest first; each run's output
# in $OUT/<run>.out), THREADS (each run's OMP_NUM_THREADS; default OMP_NUM_THREADS, else the cores over PARALLEL),
# SUMMARY_FLAGS="" (--no_profile skips the GMACs columns).
# Budget (pilot, docs/RESULTS.md "Clip backbones"): a training step of 16 videos on one thread, bf16 (fp32) CPU
# seconds: r3d_18-32 2.0 (4.8), r3d_18-cum8 1.2 (3.3), r3d_18-8 0.7 (1.2), mc3_18 0.7 (1.0), r2plus1d_18 0.9
# (1.5), s3d 0.2 (0.3), i3d_resnet50 0.4 (0.4), x3d_xs 1.2 (0.8), slowfast_r50 0.6 (0.7); c3d (16x112x112) 1.3
# (2.0) s a video, 23 (35) min an epoch on one core: not among the default CONFIGS. The defaults take about
# 35-40 min on 2 idle cores with AMX (6 epochs); in fp32 about 6 x 1,050 core-seconds, 55 min.
# Expected (seed 0, 2026-12-03, 2,537 s on 2 cores partly shared): only slowfast_r50 takes off (60.0%, past 50% at
# epoch 3); every other row stays at chance (25.0-27.9%) after 6 epochs from scratch.
# Run it again and it skips what is finished (a killed run resumes from its last checkpoint); a folder made with
# other settings is refused ($OUT/settings.txt).
set -euo pipefail
source "$(dirname "$0")/common.sh"  # cd to the repository; claim_folder, move4mnist_data
OUT=${OUT:-runs/backbones_cpu}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-6}
SIZE=${SIZE:-32}
CLIP=${CLIP:-8}
NTRAIN=${NTRAIN:-960}
NVAL=${NVAL:-240}
SPEED=${SPEED:-"2 3"}
CONFIGS=${CONFIGS:-"r3d_18-32 r3d_18-cum8 r3d_18 mc3_18 r2plus1d_18 s3d i3d_resnet50 x3d_xs slowfast_r50"}
BATCH=${BATCH:-16}
RECIPE=${RECIPE:-"--optimizer adamw --lr 0.001 --wd 1e-4 --lr_type cos"}
if [ -z "${EXTRA+set}" ]; then  # bf16 autocast where AMX units make it pay (about 2x a 3D CNN step here)
  EXTRA=$(grep -qw amx_bf16 /proc/cpuinfo 2> /dev/null && echo "--amp bf16" || true)
fi
WORKERS=${WORKERS:-0}
PARALLEL=${PARALLEL:-2}
(( PARALLEL >= 1 )) || { echo "PARALLEL must be at least 1" >&2; exit 2; }
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # nproc itself obeys OMP_NUM_THREADS
THREADS=${THREADS:-${OMP_NUM_THREADS:-$(( CORES / PARALLEL > 1 ? CORES / PARALLEL : 1 ))}}
DATA=${DATA:-$OUT/data}
SUMMARY_FLAGS=${SUMMARY_FLAGS:-}
VIDEO_FRAMES=32  # tools/make_move4mnist.py's videos
ARCHS=$(python -c "import archs; print(' '.join(n for n in archs.arch_names() if archs.backbone_layout(n).clip))")
flags() {  # the model flags of a configuration name
  local arch=${1%%-*} rest= t
  [[ $1 == *-* ]] && rest=${1#*-}
  [[ " $ARCHS " == *" $arch "* ]] || { echo "unknown configuration $1: $arch is not a clip --arch ($ARCHS)" >&2; return 2; }
  if [ "$arch" = c3d ]; then  # fc6 takes 512x1x4x4 values: 16 frames at 112 px and nothing else
    [ -z "$rest" ] || [ "$rest" = 16 ] || { echo "configuration $1: c3d takes 16-frame clips only" >&2; return 2; }
    echo "--arch c3d --num_segments 16 --sample_rate $(( VIDEO_FRAMES / 16 )) --img_size 112 --scale_size 112"
    return
  fi
  local size="--img_size $SIZE --scale_size $SIZE"
  if [[ $rest =~ ^(cumulative|cum|uniform|slope)([0-9]+)$ ]]; then
    local method=${BASH_REMATCH[1]}
    [ "$method" = cum ] && method=cumulative
    echo "--arch $arch --cluster $method --frames $VIDEO_FRAMES --num_segments ${BASH_REMATCH[2]} $size"
    return
  fi
  t=${rest:-$CLIP}
  if ! [[ $t =~ ^[0-9]+$ ]] || (( t < 1 || VIDEO_FRAMES % t )); then
    echo "configuration $1: $t is not a clip length dividing $VIDEO_FRAMES (nor cumG, uniformG, slopeG)" >&2
    return 2
  fi
  echo "--arch $arch --num_segments $t --sample_rate $(( VIDEO_FRAMES / t )) $size"
}
cost() {  # rank by training time per epoch (pilot, docs/RESULTS.md), longest first
  case $1 in
    c3d*) echo 0 ;; *-32) echo 1 ;; *-cum*|*-uniform*|*-slope*) echo 2 ;; *-16|x3d*) echo 3 ;;
    r2plus1d_18*) echo 4 ;; r3d_18*|mc3_18*) echo 5 ;; slowfast*) echo 6 ;; *) echo 7 ;;
  esac
}
for cfg in $CONFIGS; do flags "$cfg" > /dev/null || exit 2; done  # a misspelt name stops here, before any run
SETTINGS="SEED=$SEED EPOCHS=$EPOCHS SIZE=$SIZE CLIP=$CLIP NTRAIN=$NTRAIN NVAL=$NVAL SPEED=$SPEED BATCH=$BATCH"
SETTINGS="$SETTINGS WORKERS=$WORKERS RECIPE=$RECIPE EXTRA=$EXTRA"
claim_folder "$OUT" "$SETTINGS" || exit 2
start=$(date +%s)
move4mnist_data "$DATA" "$NTRAIN" "$NVAL" "$SPEED"
COMMON=(move4mnist RGB --root_path "$DATA" --pretrain scratch --npb --dropout 0.3 -b "$BATCH" $RECIPE
        --epochs "$EPOCHS" --eval-freq 1 -j "$WORKERS" --seed "$SEED" --root_log "$OUT/log" --root_model "$OUT/checkpoint")
one() {  # train (resuming a killed run), evaluate the best checkpoint from disk, record the wall seconds
  local name=$1 ckpt="$OUT/checkpoint/$1" t0
  local run=(python main.py "${COMMON[@]}" $(flags "$name") $EXTRA --store_name "$name")
  t0=$(date +%s)
  if ! OMP_NUM_THREADS=$THREADS "${run[@]}" $( [ -f "$ckpt/ckpt.pth.tar" ] && echo --resume "$ckpt/ckpt.pth.tar" ) \
      > "$OUT/$name.out" 2>&1; then
    echo "$name: training failed, last lines of $OUT/$name.out:"; tail -n 5 "$OUT/$name.out"; return 1
  fi
  if ! OMP_NUM_THREADS=$THREADS "${run[@]}" --evaluate --resume "$ckpt/ckpt.best.pth.tar" 2>/dev/null \
      | tail -n 1 > "$OUT/log/$name/eval.txt"; then
    echo "$name: evaluation failed"; return 1
  fi
  echo $(( $(date +%s) - t0 )) > "$OUT/log/$name/done"
  echo "$name: $(cat "$OUT/log/$name/eval.txt")"
}
trap 'kill $(jobs -p) 2> /dev/null || true' EXIT  # a stopped comparison stops its runs too
order=$(for c in $CONFIGS; do echo "$(cost "$c") $c"; done | sort -s -n -k1,1 | cut -d' ' -f2)
echo "runs: $(echo $order) (PARALLEL=$PARALLEL, $THREADS threads each, $EPOCHS epochs)"
failed=0 pids=()
for name in $order; do
  [ -f "$OUT/checkpoint/$name/ckpt.pth.tar" ] && [ -f "$OUT/log/$name/done" ] && continue
  while (( $(jobs -rp | wc -l) >= PARALLEL )); do wait -n || true; done
  one "$name" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done  # each run's own exit status
summary=(python tools/summarize_backbones.py "$OUT" $SUMMARY_FLAGS)
for name in $CONFIGS; do summary+=(--config "$name" "$(flags "$name")"); done
"${summary[@]}" > "$OUT/results.md"
cat "$OUT/results.md"
echo "wall: $(( $(date +%s) - start )) s for this call, data generation included"
exit $failed
