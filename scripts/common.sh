# Shared by the experiment scripts: run a training command, then evaluate its best checkpoint.
# Usage: train_and_test NAME ARGS...   (ARGS: everything after `python main.py`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT_LOG=${ROOT_LOG:-log}
ROOT_MODEL=${ROOT_MODEL:-checkpoint}
train_and_test() {
  local name=$1; shift
  python main.py "$@" --store_name "$name" --root_log "$ROOT_LOG" --root_model "$ROOT_MODEL"
  python main.py "$@" --store_name "$name" --root_log "$ROOT_LOG" --root_model "$ROOT_MODEL" \
      --evaluate --resume "$ROOT_MODEL/$name/ckpt.best.pth.tar"
}
