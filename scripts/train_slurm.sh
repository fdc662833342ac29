#!/usr/bin/env bash
# Data-parallel training on a SLURM allocation: one torchrun launcher per node (srun), one process per GPU,
# joined by torchrun's c10d rendezvous on the allocation's first node. Elastic: a lost worker restarts the
# group (up to MAX_RESTARTS times) and `--resume auto` continues from the run's last checkpoint.
#
#   sbatch [--nodes N] scripts/train_slurm.sh DATASET MODALITY [main.py flags...]
#
# Every node must see the data (--root_path, the lists) and the --root_model folder at the same paths, e.g. on
# a network file system: rank 0 alone writes the checkpoints, and every rank reads them on resume (README,
# "Several machines"). -b is the batch per process: scale --lr with the global batch (-b x processes).
#
# The paper's 8-GPU setting, 1 node x 8 GPUs: Something-Something V1, TSM ResNet-50, cumulative clustering of
# all frames into 8 clusters, the global batch of scripts/train_table5_something.sh (32 = 8 x 4):
#   sbatch --nodes 1 --gpus-per-node 8 scripts/train_slurm.sh something RGB --arch resnet50 \
#       --cluster cumulative --frames all --num_segments 8 --shift --shift_div 8 --shift_place blockres \
#       --lr 0.01 --wd 5e-4 --lr_steps 20 40 --epochs 50 -b 4 -j 8 --dropout 0.5 --gd 20 --eval-freq 1 --npb \
#       --save_freq 500 --store_name ssv1_cumulative8
# Settings (environment): NPROC (processes per node; default SLURM_GPUS_ON_NODE, else 8), PORT (rendezvous
# port on the first node, 29500), MAX_RESTARTS (3), REPO (the project folder; default the submit folder).
#SBATCH --job-name=fullvideo
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=48:00:00
#SBATCH --output=slurm-%j.out
set -euo pipefail
: "${SLURM_JOB_ID:?run me with sbatch (or inside an allocation: salloc)}"
REPO=${REPO:-${SLURM_SUBMIT_DIR:-$PWD}}
cd "$REPO"
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
PORT=${PORT:-29500}
NPROC=${NPROC:-${SLURM_GPUS_ON_NODE:-8}}
MAX_RESTARTS=${MAX_RESTARTS:-3}
echo "nodes: $SLURM_NNODES x $NPROC processes; rendezvous at $HEAD:$PORT (job $SLURM_JOB_ID)"
# --resume auto comes last, so it wins over a --resume in the flags: every (re)start of the group continues
# from {root_model}/{store_name}/ckpt.pth.tar when it exists.
srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node "$NPROC" --max_restarts "$MAX_RESTARTS" \
    --rdzv_backend c10d --rdzv_endpoint "$HEAD:$PORT" --rdzv_id "$SLURM_JOB_ID" \
    main.py "$@" --resume auto
