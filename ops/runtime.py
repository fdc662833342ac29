"""Run-time helpers main.py and the tools share: the device and the seeds (plain arguments, no flags)."""
import os
import random

import numpy as np
import torch


def select_device(choice: str) -> torch.device:
    """``auto``: CUDA when there is one; ``cuda`` without a GPU is an error, not a silent fallback."""
    if choice == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if choice == 'cpu' or (choice == 'auto' and not torch.cuda.is_available()):
        return torch.device('cpu')
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    torch.cuda.set_device(local_rank)
    return torch.device('cuda', local_rank)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch; deterministic kernels where torch offers them."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def describe_machine(device: torch.device) -> str:
    """One line for a run's log: what its figures depend on beyond the flags (fp32 on the CPU is bitwise
    repeatable only on the same CPU model at the same thread count and torch version)."""
    cpu = ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), '')
    except OSError:
        pass
    where = torch.cuda.get_device_name(device) if device.type == 'cuda' else (cpu or 'unknown CPU')
    return f"machine: torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, {device.type}: {where}"

