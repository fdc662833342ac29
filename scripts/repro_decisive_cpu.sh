#!/usr/bin/env bash
# The decisive Move4MNIST study (docs/RESULTS.md, first table): the paper's 9 Table 1 configurations, 3 seeds,
# every run starting from a starting point this project makes itself, as the paper's runs start from ImageNet.
#   For each seed: TSM-2 (2 frames a video, far apart, from scratch, WARM_EPOCHS epochs) is the starting point;
#   then TSM-8, TSM-16, TSM-all and ours-{uniform,slope,cumulative}-{8,16} each train EPOCHS epochs from its
#   best checkpoint (--tune_from), with the quickstart's recipe (AdamW lr 1e-3, wd 1e-4, cosine, batch 16,
#   dropout 0.3, 32 px crops, fp32), one run at a time on all the cores, seed by seed.
# Settings (env): OUT=runs/decisive, SEEDS="0 1 2", EPOCHS=6, WARM_EPOCHS=6, CONFIGS (the 9), and any of
# scripts/repro_move4mnist_cpu.sh's (e.g. SPEED, NTRAIN). Run it again and it skips every finished run, so the
# study can be split over several calls; one configuration of one seed:
#   CONFIGS=slope16 SEEDS=1 bash scripts/repro_decisive_cpu.sh
# re-trains only that run when its folder is removed (rm -r runs/decisive/{checkpoint,log}/slope16_s1).
# Then: python tools/paired_orderings.py runs/decisive   (the paper's orderings, paired over seeds and videos)
# Expected figures: docs/RESULTS.md, "The decisive study".
set -euo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-runs/decisive}
export SEEDS=${SEEDS:-"0 1 2"}
export EPOCHS=${EPOCHS:-6}
export WARM=${WARM-tsm2}
export WARM_EPOCHS=${WARM_EPOCHS:-6}
export CONFIGS=${CONFIGS:-"tsm8 tsm16 tsmall uniform8 slope8 cumulative8 uniform16 slope16 cumulative16"}
export EVAL_FREQ=${EVAL_FREQ:-1}
export PARALLEL=${PARALLEL:-1}
export EXTRA=${EXTRA-}
export WIDE=${WIDE-}
exec bash scripts/repro_move4mnist_cpu.sh
