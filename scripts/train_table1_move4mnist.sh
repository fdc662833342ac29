#!/usr/bin/env bash
# Paper Table 1: Move4MNIST (1,800 / 600 videos of 32 frames), ResNet-18 TSM pretrained on ImageNet,
# settings of the authors' released command (lr 0.001, 40 epochs, batch 16, dropout 0.8, gd 20, --npb).
# Paper top-1 (mean ± std):      FLOPs/video
#   TSM 8 frames        90.13 ± 0.38   14.56G
#   TSM 16 frames       93.78 ± 0.33   29.12G
#   TSM all (32)        98.83 ± 0.16   58.24G
#   Ours-uniform  8     90.25 ± 0.28   28.61G      Ours-uniform  16    92.73 ± 0.25   38.51G
#   Ours-slope    8     93.33 ± 0.19   28.61G      Ours-slope    16    94.06 ± 0.18   38.51G
#   Ours-cumulative 8   94.08 ± 0.25   28.61G      Ours-cumulative 16  95.27 ± 0.21   38.51G
source "$(dirname "$0")/common.sh"
DATA=${DATA:-data/move4mnist_paper}
[ -f "$DATA/val_videofolder.txt" ] || python tools/make_move4mnist.py --out "$DATA" --num_train 1800 --num_val 600 --seed 0
SEED=${SEED:-0}
BASE=(move4mnist RGB --root_path "$DATA" --arch resnet18 --gd 20 --lr 0.001 --epochs 40 -b 16 -j 8
      --dropout 0.8 --eval-freq 1 --shift --shift_div 8 --shift_place blockres --npb --seed "$SEED")
for n in 8 16 32; do
  train_and_test "table1_tsm${n}_s${SEED}" "${BASE[@]}" --num_segments $n
done
for method in uniform slope cumulative; do
  for g in 8 16; do
    train_and_test "table1_${method}${g}_s${SEED}" "${BASE[@]}" --cluster $method --frames 32 --num_segments $g
  done
done
