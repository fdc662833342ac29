#!/usr/bin/env bash
# The README's main job: the paper's method next to plain TSM, on a Move4MNIST set generated here.
#   ours-cumulative-8: every one of a video's 32 frames through the stem and layer1, cumulative clustering
#                      into 8 clusters, layer2-4 on the 8 cluster means (paper Sec. 3.3, Eq. 8);
#   TSM-8:             8 frames sampled per video, as TSM trains.
# Both are ResNet-18 TSMs fine-tuned with the same recipe from one starting point the script makes first (no
# ImageNet weights are downloaded): a TSM-2 trained from scratch on the same data (WARM=tsm2), as the paper's runs
# start from ImageNet; one after the other on all the cores; each best checkpoint is re-evaluated from disk with main.py --evaluate, and a
# short table ends the run: each model, the frames it sees, its GMACs per video at 224 px
# (tools/profile_model.py), its top-1 and minutes, and where the checkpoints and TensorBoard logs are.
# Expected on a 2-core CPU (fp32, seed 0): see README.md's Quickstart, which gives the figures and the time.
# The digits move faster than in the paper's data (--speed 2 3): a small network then learns the direction within
# minutes. The starting point was chosen from pilots over 3 seeds (warm-up and residual blocks starting as the
# identity did not help and are not used): docs/RESULTS.md, "The pilots that chose the starting point".
# Settings (env): OUT=runs/quickstart, SEEDS=0, EPOCHS, and any of scripts/repro_move4mnist_cpu.sh's.
# Run it again and it skips what is finished: the data, and every run that was evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-runs/quickstart}
export SEEDS=${SEEDS:-0}
export EPOCHS=${EPOCHS:-6}
export WARM=${WARM-tsm2}
export WARM_EPOCHS=${WARM_EPOCHS:-6}
export CONFIGS=${CONFIGS:-"cumulative8 tsm8"}
export EVAL_FREQ=${EVAL_FREQ:-1}
export PARALLEL=${PARALLEL:-1}  # one run at a time on all the cores: a step scales to 2 threads (1052 -> 516 ms)
export EXTRA=${EXTRA-}  # fp32 everywhere: the same figures on the same CPU model and core count, within the seeds' spread elsewhere
export WIDE=${WIDE-}  # no configuration here needs both cores alone
export SUMMARY_FLAGS=${SUMMARY_FLAGS:-"--brief"}
exec bash scripts/repro_move4mnist_cpu.sh
