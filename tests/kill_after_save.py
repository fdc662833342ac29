"""Test helper: ``python tests/kill_after_save.py EPOCH ITERATION MAIN_ARGS...`` runs main.py and SIGKILLs its own
process right after the checkpoint of (EPOCH, ITERATION) is complete: a kill at a known point, for the tests
that resume it (tests/test_main.py; tests/test_distributed.py runs it under torchrun, where rank 0 saves)."""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import main  # noqa: E402

AT = (int(sys.argv[1]), int(sys.argv[2]))
save = main.save_checkpoint


def save_then_die(state, path):
    save(state, path)
    if (state['epoch'], state['iteration']) == AT:
        os.kill(os.getpid(), signal.SIGKILL)


main.save_checkpoint = save_then_die
sys.argv = ['main.py', *sys.argv[3:]]
main.main()
