"""tools/benchmark_flow.py: the synthetic scene moves as described, and the command times both algorithms."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tools import benchmark_flow
from tools.extract_flow import compute_flow, flow_algorithm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip('cv2', reason='tools/benchmark_flow.py needs opencv-contrib-python-headless')


def test_scene_pans_right_and_down():
    frames = benchmark_flow.synthetic_frames(96, 64, 4)
    assert [f.shape for f in frames] == [(64, 96)] * 4 and frames[0].dtype == np.uint8
    flow = compute_flow(flow_algorithm('dis'), frames[1], frames[2])  # t = 1 -> 2: 2 px right, 1 px down
    assert np.abs(np.median(flow[8:20, 8:30].reshape(-1, 2), axis=0) - [2, 1]).max() < 0.3


def test_command_prints_both_rates():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'benchmark_flow.py'), '--width', '64',
                           '--height', '48', '--pairs', '2', '--threads', '1'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(':')[0] for line in lines] == ['tvl1', 'dis'] and all('64x48' in line for line in lines)
    assert benchmark_flow.main(['--algo', 'dis', '--pairs', '1', '--width', '32', '--height', '32'])['dis'] > 0
