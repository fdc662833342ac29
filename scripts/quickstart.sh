#!/usr/bin/env bash
# The README's main job: generate Move4MNIST, train a small model, evaluate its best checkpoint.
# Runs in under 10 minutes on a 2-core CPU (and uses a GPU when there is one).
# Expected: validation top-1 well above chance (25%): about 80-95% for this short run.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/move4mnist}
OUT=${OUT:-runs/quickstart}
[ -f "$DATA/val_videofolder.txt" ] || python tools/make_move4mnist.py --out "$DATA" --num_train 480 --num_val 160 --seed 0
COMMON=(move4mnist RGB --root_path "$DATA" --arch resnet18 --pretrain scratch --npb --shift
        --cluster cumulative --frames 32 --num_segments 8 --img_size 64 --scale_size 64
        --dropout 0.5 -b 16 -j 2 --root_log "$OUT/log" --root_model "$OUT/checkpoint" --store_name quickstart)
python main.py "${COMMON[@]}" --epochs 6 --lr 0.02 --lr_type cos --wd 1e-4 --eval-freq 1 -p 10
python main.py "${COMMON[@]}" --evaluate --resume "$OUT/checkpoint/quickstart/ckpt.best.pth.tar" | tail -n 1
