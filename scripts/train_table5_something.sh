#!/usr/bin/env bash
# Paper Table 5: Something-Something V1 and V2, TSM-ResNet-50 pretrained on ImageNet.
# Paper top-1 (V1 / V2): TSM 8 frames 45.6 / 59.1, TSM 16 frames 47.2 / 63.4,
#   Ours-slope (all, 8) 46.7 / 60.2, Ours-cumulative (all, 8) 49.5 / 62.7, Ours-cumulative (all, 16) 51.4 / 65.1
# Something videos are short (about 30-70 frames at 12 fps), so all frames fit: --frames all.
source "$(dirname "$0")/common.sh"
for data in something somethingv2; do
  BASE=($data RGB --arch resnet50 --lr 0.01 --wd 5e-4 --lr_steps 20 40 --epochs 50 -b 32 -j 16
        --dropout 0.5 --gd 20 --eval-freq 1 --shift --shift_div 8 --shift_place blockres --npb)
  train_and_test "table5_${data}_tsm8" "${BASE[@]}" --num_segments 8
  train_and_test "table5_${data}_tsm16" "${BASE[@]}" --num_segments 16
  train_and_test "table5_${data}_slope8" "${BASE[@]}" --cluster slope --frames all --num_segments 8
  for g in 8 16; do
    train_and_test "table5_${data}_cumulative${g}" "${BASE[@]}" --cluster cumulative --frames all --num_segments $g
  done
done
