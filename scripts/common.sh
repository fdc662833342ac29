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

# An experiment folder: refused when it holds runs made with other settings, else its settings are recorded.
# Usage: claim_folder OUT "SETTINGS" [WHAT]   (WHAT: what the folder holds, in the message; default "runs")
claim_folder() {
  local out=$1 settings=$2 what=${3:-runs}
  if [ -f "$out/settings.txt" ] && [ "$(cat "$out/settings.txt")" != "$settings" ]; then
    echo "$out/settings.txt: this folder holds $what made with $(cat "$out/settings.txt");" \
         "asked for $settings: choose another OUT" >&2
    return 2
  fi
  mkdir -p "$out" && echo "$settings" > "$out/settings.txt"
}

# The Move4MNIST set in DATA (tools/make_move4mnist.py, generator seed 0), unless DATA holds its lists already.
# Usage: move4mnist_data DATA NTRAIN NVAL "SPEED"   (GEN_WORKERS: generation processes, default 2)
move4mnist_data() {
  [ -f "$1/val_videofolder.txt" ] || python tools/make_move4mnist.py --out "$1" --num_train "$2" --num_val "$3" \
      --seed 0 --speed $4 -j "${GEN_WORKERS:-2}"
}
