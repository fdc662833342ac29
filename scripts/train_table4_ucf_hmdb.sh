#!/usr/bin/env bash
# Paper Table 4: UCF101 and HMDB51 (3 splits averaged), TSM-ResNet-50 fine-tuned from Kinetics with
# frozen BatchNorm (partial BN: no --npb), 8 clusters of all frames.
# Paper top-1: UCF101 TSM 8 frames 95.9%, Ours-slope 96.2%, Ours-cumulative 96.4%
#              HMDB51 TSM 8 frames 73.5%, Ours-slope 73.3%, Ours-cumulative 73.4%
# KINETICS: a TSM Kinetics checkpoint on local disk (TSM's model zoo layout loads by name).
source "$(dirname "$0")/common.sh"
KINETICS=${KINETICS:?set KINETICS=path/to/TSM_kinetics_RGB_resnet50_shift8_blockres_avg_segment8_e50.pth}
for data in ucf101 hmdb51; do
  for split in 1 2 3; do
    LISTS=(--train_list "${data}_rgb_train_split_${split}.txt" --val_list "${data}_rgb_val_split_${split}.txt")
    BASE=($data RGB "${LISTS[@]}" --arch resnet50 --tune_from "$KINETICS" --lr 0.001 --lr_steps 10 20
          --epochs 25 -b 16 -j 16 --dropout 0.8 --gd 20 --eval-freq 1 --shift --shift_div 8 --shift_place blockres)
    train_and_test "table4_${data}_tsm8_split${split}" "${BASE[@]}" --num_segments 8
    for method in slope cumulative; do
      train_and_test "table4_${data}_${method}8_split${split}" "${BASE[@]}" --cluster $method --frames all --chunk_frames 64 --num_segments 8
    done
  done
done
