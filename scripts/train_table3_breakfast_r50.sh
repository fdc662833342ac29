#!/usr/bin/env bash
# Paper Table 3: Breakfast, ResNet-50 TSM pretrained on ImageNet.
# Paper top-1: TSM 16 frames 72.1%, Ours-slope (all, 16 clusters) 74.9%, Ours-cumulative (all, 16) 76.6%.
source "$(dirname "$0")/common.sh"
BASE=(breakfast RGB --arch resnet50 --lr 0.01 --wd 5e-4 --lr_steps 20 40 --epochs 50 -b 8 -j 16
      --dropout 0.5 --gd 20 --eval-freq 1 --shift --shift_div 8 --shift_place blockres --npb)
train_and_test table3_tsm16 "${BASE[@]}" --num_segments 16
for method in slope cumulative; do
  train_and_test "table3_${method}16" "${BASE[@]}" --cluster $method --frames all --chunk_frames 64 --num_segments 16
done
