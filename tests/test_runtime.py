"""ops/runtime.py: the device choice and the seeds."""
import random

import numpy as np
import pytest
import torch

from ops.runtime import select_device, set_seed


def test_select_device_cpu_and_cuda_without_a_gpu_is_an_error(monkeypatch):
    assert select_device('cpu') == torch.device('cpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert select_device('auto') == torch.device('cpu')
    with pytest.raises(RuntimeError, match='--device cuda'):
        select_device('cuda')


def test_set_seed_repeats_python_numpy_and_torch_draws():
    draws = []
    for _ in range(2):
        set_seed(7)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
    assert draws[0] == draws[1]
    set_seed(8)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) != draws[0]


def test_describe_machine_names_torch_the_threads_and_the_cpu():
    from ops.runtime import describe_machine
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        line = describe_machine(torch.device('cpu'))
    finally:
        torch.set_num_threads(before)
    assert line.startswith(f'machine: torch {torch.__version__}, 1 intra-op threads, cpu: ')
    assert len(line.split('cpu: ', 1)[1]) > 0
