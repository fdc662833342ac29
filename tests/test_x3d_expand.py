"""tools/x3d_expand.py: one expansion step on a tiny Move4MNIST: six candidates of about twice the base's
multiply-adds (counted here again by hand), the best top-1 chosen, the path's JSON and plot written."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from archs.x3d import expanded_x2d
from tools import x3d_expand

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.25  # each candidate's MACs within 25% of twice the base's (widths come in steps of 8 channels)


def hand_macs(config: x3d_expand.Config, num_class: int) -> int:
    """Multiply-adds of the convolutions and linear layers of ``config``'s network on one clip, from each layer's
    output size and weight shape (forward hooks on a real forward, independent of torch's FLOP counter)."""
    net = expanded_x2d(config.width, config.bottleneck, config.depth, num_classes=num_class,
                       head_width=config.head).eval()
    total = [0]

    def hook(module, inputs, output):
        if isinstance(module, nn.Conv3d):  # per output element: in_channels / groups x kernel volume
            total[0] += output.numel() * module.weight[0].numel()
        else:
            total[0] += output.numel() * module.in_features

    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, config.frames, config.size, config.size))
    return total[0]


@pytest.fixture(scope='module')
def one_step(tiny_move4mnist, tmp_path_factory):
    data = tiny_move4mnist(8, 4)
    out = tmp_path_factory.mktemp('expand')
    result = x3d_expand.main(['move4mnist', '--root_path', str(data), '--out', str(out), '--steps', '1',
                              '--epochs', '1', '-b', '4', '--seed', '1'])
    return result, out


def test_six_candidates_each_about_twice_the_base(one_step):
    result, _ = one_step
    base = result['path'][0]
    step = [r for r in result['candidates'] if r['step'] == 1]
    assert [r['axis'] for r in step] == list(x3d_expand.AXES)
    base_macs = hand_macs(x3d_expand.Config(**base['config']), 4)
    assert base['gmacs'] * 1e9 == pytest.approx(base_macs, rel=1e-9)
    for r in step:
        macs = hand_macs(x3d_expand.Config(**r['config']), 4)
        assert r['gmacs'] * 1e9 == pytest.approx(macs, rel=1e-9), r['axis']
        assert abs(macs / base_macs / 2 - 1) < TOLERANCE, (r['axis'], macs / base_macs)
    configs = {r['axis']: r['config'] for r in step}
    b = base['config']
    assert configs['frames']['frames'] == 2 * b['frames'] and configs['frames']['stride'] == b['stride']
    assert configs['rate']['frames'] == 2 * b['frames'] and configs['rate']['stride'] == b['stride'] // 2
    for axis in ('size', 'width', 'bottleneck', 'depth'):  # only that axis changed
        changed = {k for k in b if configs[axis][k] != b[k]}
        assert changed == {axis}, (axis, changed)


def test_the_size_is_the_nearest_to_twice():
    base = x3d_expand.Config(1, 8, 32, 0.5, 1.0, 0.5, 128)
    size = x3d_expand.candidates(base, 4)['size'][0].size
    ratios = {s: hand_macs(x3d_expand.Config(1, 8, s, 0.5, 1.0, 0.5, 128), 4) / hand_macs(base, 4)
              for s in (size - 1, size, size + 1)}
    assert min(ratios, key=lambda s: abs(ratios[s] - 2)) == size


def test_the_rate_axis_keeps_the_span_or_is_left_out():
    for stride, offered in ((6, True), (3, False)):  # the one-step fixture covers 8
        base = x3d_expand.Config(2, stride, 32, 0.5, 1.0, 0.5, 128)
        got = x3d_expand.candidates(base, 4)
        assert ('rate' in got) == offered, stride
        if offered:
            rate = got['rate'][0]
            assert rate.frames * rate.stride == base.frames * base.stride  # the same span, twice the frames


def test_the_best_top1_is_chosen_and_the_outputs_are_written(one_step):
    result, out = one_step
    step = [r for r in result['candidates'] if r['step'] == 1]
    assert result['path'][1]['top1'] == max(r['top1'] for r in step)
    assert result['path'][1] in step
    saved = json.loads((out / 'path.json').read_text())
    assert [r['name'] for r in saved['path']] == [r['name'] for r in result['path']]
    assert (out / 'expansion.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    for r in result['candidates']:  # main.fit's log of every candidate
        assert 'Testing Results' in (out / 'log' / r['name'] / 'log.csv').read_text()


def test_help_runs():
    done = subprocess.run([sys.executable, 'tools/x3d_expand.py', '--help'], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert done.returncode == 0 and '--steps' in done.stdout
