#!/usr/bin/env bash
# Two-stream study on Move4MNIST at CPU scale (issue 20; docs/RESULTS.md, "Two-stream"): the RGB stream, the Flow
# stream and their late fusion, for TSM-8 and ours-cumulative-8, over SEEDS.
#   1. the quickstart's data (scripts/quickstart.sh's generator settings), then its flow frames:
#      python tools/extract_flow.py D D --from frames -j 2 --algo dis   (TSN's flow_x/flow_y JPEGs beside the RGB)
#   2. per seed, per stream: scripts/repro_move4mnist_cpu.sh with the quickstart's recipe (a TSM-2 trained from
#      scratch for WARM_EPOCHS, then tsm8 and cumulative8 fine-tuned from it for EPOCHS, AdamW); the Flow stream's
#      starting point is a Flow TSM-2. Each stream's runs, table and epoch-by-epoch top-1 are in $OUT/{rgb,flow}.
#   3. each best checkpoint through tools/test_models.py --save_scores ($OUT/scores/{rgb,flow}_{config}_s{seed}.npz),
#      the two streams fused with tools/ensemble.py --coeff $COEFF (TSN's RGB : Flow = 1 : 1.5), and $OUT/results.md:
#      per seed and mean ± std, RGB, Flow, fused 1 : 1.5, and the best fusion weight on the validation set (the
#      only held-out set Move4MNIST has: an optimistic figure, reported as such).
# Settings (env): OUT=runs/two_stream, SEEDS="0 1", EPOCHS=6, WARM_EPOCHS=6, CONFIGS="tsm8 cumulative8",
# NTRAIN=960, NVAL=240, SPEED="2 3", FLOW_ALGO=dis (tvl1 is ~100x slower: docs/PERFORMANCE.md), COEFF="1 1.5",
# and any of scripts/repro_move4mnist_cpu.sh's (EXTRA, BATCH, ...). On cores that other jobs share, give
# THREADS=1 WARM_THREADS=1: there a 2-thread TSM-2 step took 5.3 s, a 1-thread one 0.6 s (threads wait on each other).
# Run it again and it skips what is finished: the data, the flow, every evaluated run and every score file.
# Expected (docs/RESULTS.md, "Two-stream"; reduced to WARM_EPOCHS=3 EPOCHS=3, seeds 0 1, 53 min on 2 shared cores):
# Flow TSM-2 from scratch 81-85% against RGB's 28-42%; TSM-8 RGB 25/77, Flow 93.8/95.0, fused 1:1.5 94.6/96.7;
# cumulative-8 RGB 31/94, Flow 96.7/97.5, fused 96.7/100.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/two_stream}
export SEEDS=${SEEDS:-"0 1"}
export EPOCHS=${EPOCHS:-6}
export WARM=${WARM-tsm2}
export WARM_EPOCHS=${WARM_EPOCHS:-6}
export CONFIGS=${CONFIGS:-"tsm8 cumulative8"}
export EVAL_FREQ=${EVAL_FREQ:-1}
export PARALLEL=${PARALLEL:-1}  # as the quickstart: one run at a time on all the cores
export EXTRA=${EXTRA-}
export WIDE=${WIDE-}
export SUMMARY_FLAGS=${SUMMARY_FLAGS:-"--no_profile"}  # the profile is the RGB model's; TSM's cost is Table 1's
export NTRAIN=${NTRAIN:-960} NVAL=${NVAL:-240} SPEED=${SPEED:-"2 3"}
export DATA="$OUT/data"
FLOW_ALGO=${FLOW_ALGO:-dis}
COEFF=${COEFF:-"1 1.5"}
mkdir -p "$OUT/scores"
start=$(date +%s)
[ -f "$DATA/val_videofolder.txt" ] || python tools/make_move4mnist.py --out "$DATA" --num_train "$NTRAIN" \
    --num_val "$NVAL" --seed 0 --speed $SPEED -j "${GEN_WORKERS:-2}"
if [ ! -f "$DATA/flow_$FLOW_ALGO.done" ]; then  # extract_flow.py skips finished videos itself; this skips its scan
  python tools/extract_flow.py "$DATA" "$DATA" --from frames -j "${FLOW_JOBS:-2}" --algo "$FLOW_ALGO"
  touch "$DATA/flow_$FLOW_ALGO.done"
fi
echo "data and flow: $(( $(date +%s) - start )) s"
for seed in $SEEDS; do  # seed by seed: a finished seed is a whole two-stream table
  for stream in rgb flow; do
    modality=$([ $stream = rgb ] && echo RGB || echo Flow)
    OUT="$OUT/$stream" MODALITY=$modality SEEDS=$seed bash scripts/repro_move4mnist_cpu.sh > "$OUT/$stream.s$seed.out" \
      || { echo "$stream seed $seed failed: $OUT/$stream.s$seed.out"; tail -n 5 "$OUT/$stream.s$seed.out"; exit 1; }
    for cfg in $CONFIGS; do
      npz="$OUT/scores/${stream}_${cfg}_s$seed.npz"
      [ -f "$npz" ] || python tools/test_models.py --weights "$OUT/$stream/checkpoint/${cfg}_s$seed/ckpt.best.pth.tar" \
          --save_scores "$npz" -j 0 --device "${TEST_DEVICE:-cpu}" > "$OUT/scores/${stream}_${cfg}_s$seed.txt" 2>&1 \
        || { echo "test_models failed: $OUT/scores/${stream}_${cfg}_s$seed.txt"; exit 1; }
      echo "$stream $cfg seed $seed: $(grep 'Prec@1' "$OUT/scores/${stream}_${cfg}_s$seed.txt" | tail -n 1)"
    done
  done
  for cfg in $CONFIGS; do
    python tools/ensemble.py "$OUT/scores/rgb_${cfg}_s$seed.npz" "$OUT/scores/flow_${cfg}_s$seed.npz" --coeff $COEFF \
      --save_scores "$OUT/scores/fused_${cfg}_s$seed.npz" > "$OUT/scores/fused_${cfg}_s$seed.txt"
    echo "fused $cfg seed $seed ($COEFF): $(grep 'Prec@1' "$OUT/scores/fused_${cfg}_s$seed.txt")"
  done
done
for stream in rgb flow; do  # each stream's table over all the seeds (every run is finished: nothing trains)
  OUT="$OUT/$stream" MODALITY=$([ $stream = rgb ] && echo RGB || echo Flow) bash scripts/repro_move4mnist_cpu.sh \
    > "$OUT/$stream.out"
done
COEFF="$COEFF" python - "$OUT" $SEEDS -- $CONFIGS > "$OUT/results.md" <<'EOF'
"""The two-stream table: top-1 of each stream and of their fusions, per seed and mean ± std."""
import os
import statistics
import sys

import numpy as np

from tools.ensemble import ensemble, metrics

out, rest = sys.argv[1], sys.argv[2:]
seeds, configs = rest[:rest.index('--')], rest[rest.index('--') + 1:]
coeff = [float(c) for c in os.environ['COEFF'].split()]
alphas = np.round(np.linspace(0, 1, 21), 2)  # RGB weight a, Flow weight 1 - a


def top1(paths, weights):
    total, first = ensemble(paths, weights)
    return metrics(total, first['labels'], total.shape[1])['top1']


def cell(values):
    mean = statistics.mean(values)
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ''
    return f"{mean:.2f}{spread} ({', '.join(f'{v:.2f}' for v in values)})"


print(f"| model | RGB | Flow | fused {':'.join(f'{c:g}' for c in coeff)} | best fusion on val (oracle) | "
      f"RGB weight of the best |")
print('|---|---|---|---|---|---|')
for cfg in configs:
    rows = {k: [] for k in ('rgb', 'flow', 'fused', 'best')}
    picked = []
    for seed in seeds:
        pair = [os.path.join(out, 'scores', f'{s}_{cfg}_s{seed}.npz') for s in ('rgb', 'flow')]
        rows['rgb'].append(top1(pair[:1], [1.0]))
        rows['flow'].append(top1(pair[1:], [1.0]))
        rows['fused'].append(top1(pair, coeff))
        grid = [top1(pair, [a, 1 - a]) for a in alphas]  # ties: the weight nearest TSN's
        best = max(range(len(alphas)), key=lambda i: (grid[i], -abs(alphas[i] - coeff[0] / sum(coeff))))
        rows['best'].append(grid[best])
        picked.append(f'{alphas[best]:g}')
    print(f"| {cfg} | {cell(rows['rgb'])} | {cell(rows['flow'])} | {cell(rows['fused'])} | {cell(rows['best'])} | "
          f"{', '.join(picked)} |")
print(f"\nseeds {' '.join(seeds)}: mean ± std (each seed's top-1 in brackets); the best fusion's weight is chosen "
      f"on the validation set it is scored on, over a = 0, 0.05, ..., 1 (scores a * RGB + (1 - a) * Flow)")
EOF
cat "$OUT/results.md"
echo "wall: $(( $(date +%s) - start )) s for this call"
