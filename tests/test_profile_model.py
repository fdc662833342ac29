"""tools/profile_model.py: MAC counts against hand counts, saved-bytes counting, chunked memory, the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from tools.profile_model import PAPER_TABLE1, PUBLISHED_CLIP_GMACS, activation_memory, count_macs, main, \
    make_model_and_input, paper_row, parse_profile_args, saved_bytes

ROOT = Path(__file__).resolve().parent.parent
BASE = ['move4mnist', 'RGB', '--arch', 'resnet18', '--shift', '--pretrain', 'scratch', '--device', 'cpu']


def _model(*flags, size=32):
    args = parse_profile_args(BASE + ['--img_size', str(size)] + list(flags))
    return make_model_and_input(args, torch.device('cpu'))


def _conv_macs(c_out, c_in, k, out_hw):
    return c_out * c_in * k * k * out_hw * out_hw


def _early_macs(size):
    """Stem conv + layer1 of ResNet-18 per frame, by hand: 7x7/2 conv, then four 3x3 64->64 convs at size/4."""
    return _conv_macs(64, 3, 7, size // 2) + 4 * _conv_macs(64, 64, 3, size // 4)


def _late_macs(size, num_class=4):
    """layer2..layer4 of torchvision's ResNet-18 per frame, each counted on its own, plus the new classifier."""
    net = torchvision.models.resnet18().eval()
    x = torch.zeros(1, 64, size // 4, size // 4)
    total = 0
    for layer in (net.layer2, net.layer3, net.layer4):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            x = layer(x)
        total += counter.get_total_flops() // 2
    return total + 512 * num_class


def test_tsm16_is_exactly_twice_tsm8():
    m8, x8, _ = _model('--num_segments', '8')
    m16, x16, _ = _model('--num_segments', '16')
    assert count_macs(m16, x16)[0] == 2 * count_macs(m8, x8)[0]
    assert count_macs(m8, x8) == (8 * (_early_macs(32) + _late_macs(32)), 0)


def test_ours_is_frames_times_early_plus_clusters_times_late():
    frames, clusters = 8, 4
    model, x, _ = _model('--cluster', 'cumulative', '--frames', str(frames), '--num_segments', str(clusters))
    macs, bmm = count_macs(model, x)
    assert macs == frames * _early_macs(32) + clusters * _late_macs(32)
    assert bmm == clusters * frames * 64 * 8 * 8  # the means: (G x F) @ (F x D), D = layer1's output per frame


def test_paper_table1_flops_within_one_percent():
    early, late = _early_macs(224), _late_macs(224)
    mine = {(False, 8, 8): 8 * (early + late), (False, 16, 16): 16 * (early + late),
            (False, 32, 32): 32 * (early + late), (True, 8, 32): 32 * early + 8 * late,
            (True, 16, 32): 32 * early + 16 * late}
    for key, macs in mine.items():
        assert abs(macs / 1e9 / PAPER_TABLE1[key]['gflops'] - 1) < 0.01, PAPER_TABLE1[key]['name']


def test_paper_row_lookup():
    args = parse_profile_args(BASE + ['--img_size', '224', '--cluster', 'slope', '--frames', '32',
                                      '--num_segments', '16'])
    assert paper_row(args)['gflops'] == 38.51
    assert paper_row(parse_profile_args(BASE + ['--img_size', '112', '--num_segments', '8'])) is None


def test_saved_bytes_of_linear_relu_is_the_hand_count():
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
    x = torch.randn(3, 5)
    # addmm keeps its input (for the weight's gradient); ReLU keeps its (3, 7) float32 output; weights excluded.
    assert saved_bytes(model, lambda: model(x), exclude=(x,))[0] == 3 * 7 * 4
    assert saved_bytes(model, lambda: model(x), exclude=())[0] == 3 * 7 * 4 + 3 * 5 * 4


def test_saved_bytes_counts_a_storage_once():
    model = nn.ReLU()
    x = torch.randn(4, 6, requires_grad=True)

    def fn():
        y = model(x)  # relu keeps y
        return y * y.view(6, 4).t().t().view(4, 6)  # mul keeps y twice more, through views
    assert saved_bytes(model, fn, exclude=(x,))[0] == 4 * 6 * 4


def test_chunking_keeps_less_and_does_not_grow_with_frames():
    def memory(frames, chunk):
        model, x, lengths = _model('--cluster', 'cumulative', '--frames', str(frames), '--num_segments', '4',
                                   '--chunk_frames', str(chunk))
        return activation_memory(model, x, lengths)
    plain, chunked, longer = memory(32, 0), memory(32, 4), memory(96, 4)
    assert plain['recompute'] == 0 and chunked['recompute'] > 0
    assert chunked['peak_estimate'] < 0.5 * plain['peak_estimate']
    assert longer['peak_estimate'] < 1.25 * chunked['peak_estimate']
    assert longer['input'] == 3 * chunked['input']


def test_cli_json_has_the_keys(capsys):
    main(BASE + ['--img_size', '32', '--cluster', 'uniform', '--frames', '8', '--num_segments', '4',
                 '--chunk_frames', '4', '--json'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    for key in ('gmacs_per_video', 'params_m', 'activation_mb_per_video', 'saved_mb', 'recompute_mb', 'input_mb',
                'cluster_mmacs', 'gmacs_executed_per_video', 'config'):
        assert key in res
    assert res['gmacs_executed_per_video'] > res['gmacs_per_video']  # halo frames and the assignment pass
    assert res['activation_mb_per_video'] == pytest.approx(res['saved_mb'] + res['recompute_mb'])


def test_script_prints_the_table():
    out = subprocess.run([sys.executable, 'tools/profile_model.py'] + BASE +
                         ['--img_size', '32', '--num_segments', '2', '--frames', 'all', '--cluster', 'slope',
                          '--video_frames', '6', '-b', '2', '--breakdown'],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'GMACs (conv + linear)' in out.stdout and 'saved_by_module' in out.stdout


CLIP_BASE = ['move4mnist', 'RGB', '--pretrain', 'scratch', '--device', 'cpu', '--json']


def _json(capsys, argv):
    main(argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize('key', sorted(PUBLISHED_CLIP_GMACS), ids=lambda k: f'{k[0]}-{k[1]}x{k[2]}')
def test_clip_backbone_gmacs_match_the_published_figures(capsys, key):
    """The tool's JSON per clip against torchvision's table (and C3D's, I3D-ResNet-50's); meta device: no arithmetic."""
    arch, frames, size = key
    res = _json(capsys, CLIP_BASE + ['--arch', arch, '--img_size', str(size), '--num_segments', str(frames), '--meta'])
    published = res['published']['gmacs']
    assert published == PUBLISHED_CLIP_GMACS[key]['gmacs']
    assert abs(res['gmacs_per_video'] / published - 1) < 0.01, (res['gmacs_per_video'], published)
    assert res['activation_mb_per_video'] is None  # nothing is computed on the meta device


def test_meta_counts_what_the_cpu_counts(capsys):
    argv = CLIP_BASE + ['--arch', 'r3d_18', '--img_size', '32', '--num_segments', '8']
    cpu, meta = _json(capsys, argv), _json(capsys, argv + ['--meta'])
    assert meta['gmacs_per_video'] == cpu['gmacs_per_video'] and meta['params_m'] == cpu['params_m']
    assert cpu['activation_mb_per_video'] > 0 and cpu['published'] is None  # no published 8x32x32 figure
    with pytest.raises(SystemExit):  # the clustering reads activations: not on the meta device
        parse_profile_args(argv + ['--meta', '--cluster', 'uniform', '--frames', '16'])


def test_clustering_on_r3d_costs_less_than_all_frames_and_more_than_a_clip(capsys):
    """The issue's check at 32 px: r3d_18, 32 frames -> 8 cumulative clusters after layer1, against one clip of all
    32 frames and one of 8 frames: GMACs and activation memory both sit between."""
    argv = CLIP_BASE + ['--arch', 'r3d_18', '--img_size', '32']
    ours = _json(capsys, argv + ['--cluster', 'cumulative', '--frames', '32', '--num_segments', '8'])
    all32 = _json(capsys, argv + ['--num_segments', '32'])
    clip8 = _json(capsys, argv + ['--num_segments', '8'])
    assert clip8['gmacs_per_video'] < ours['gmacs_per_video'] < all32['gmacs_per_video']
    assert ours['cluster_mmacs'] > 0
    assert clip8['activation_mb_per_video'] < ours['activation_mb_per_video'] < all32['activation_mb_per_video']


@pytest.mark.parametrize('arch,frames,size,alpha,published,measured', [
    ('x3d_xs', 4, 182, None, 0.839, 0.8439), ('x3d_s', 13, 182, None, 2.722, 2.7270),
    ('x3d_m', 16, 256, None, 6.181, 6.1857),
    ('x3d_l', 16, 356, None, 24.778, 24.778),  # the issue lists no L figure: pytorchvideo's, measured
    ('slowfast_r50', 32, 256, 4, 65.709, 65.712), ('slowfast_r50', 32, 256, 8, 36.305, 36.102)])
def test_the_clip_backbones_costs_through_the_tool_are_pytorchvideos(arch, frames, size, alpha, published, measured,
                                                                     capsys):
    """The issue's command (`--meta --json`, 400 classes) against the issue's GMACs per clip within 2%, and within
    0.5% of pytorchvideo 0.1.5's own models measured under torch's counter (docs/PERFORMANCE.md; the 4x16 file's
    fusion kernel 5: 36.102, where the issue's 36.305 is kernel 7's)."""
    argv = ['kinetics400', 'RGB', '--arch', arch, '--img_size', str(size), '--num_segments', str(frames),
            '--pretrain', 'scratch', '--num_class', '400', '--meta', '--json']
    res = main(argv + ([] if alpha is None else ['--slowfast_alpha', str(alpha)]))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['gmacs_per_video'] == res['gmacs_per_video']
    assert res['gmacs_per_video'] == pytest.approx(published, rel=0.02)
    assert res['gmacs_per_video'] == pytest.approx(measured, rel=0.005)
    if arch != 'x3d_l':  # the zoo's fvcore figure, beside, with pytorchvideo's own under torch's counter named
        assert f'{measured:.3f}' in res['published']['source'] and 'fvcore' in res['published']['source']
        assert res['published']['gmacs'] == {0.839: 0.91, 2.722: 2.96, 6.181: 6.72, 65.709: 65.71,
                                             36.305: 36.69}[published]
    assert res['config']['slowfast_alpha'] == alpha
