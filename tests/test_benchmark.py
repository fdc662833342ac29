"""tools/benchmark.py: every configuration name builds, and a tiny run produces the table and its keys."""
import shutil

import pytest

from tools.benchmark import build_parser, config_argv, config_names, is_config, run
from tools.profile_model import frames_per_input, parse_profile_args

KEYS = ('name', 'frames', 'clusters', 'activation_mb', 'saved_mb', 'recompute_mb', 'input_mb', 'step_ms',
        'videos_per_s', 'cluster_ms', 'assign_ms', 'cluster_share', 'cuda_peak_mb')


def test_every_config_name_parses_as_a_training_command():
    opts = build_parser().parse_args(['--frames', '24'])
    names = config_names(8)
    assert len(names) == 15 and 'tsm-all' in names and 'slope-16+chunk' in names
    for name in names:
        args = parse_profile_args(config_argv(name, opts))
        assert frames_per_input(args) == {'tsm-8': 8, 'tsm-16': 16}.get(name, 24)
        assert args.chunk_frames == (8 if name.endswith('+chunk') else 0)
    for name in ('slope-8+fused', 'cumulative-16+eager', 'uniform-8+norule', 'cumulative-8+chunk+fused',
                 'slope-16+fused+norule'):
        assert is_config(name), name
        args = parse_profile_args(config_argv(name, opts))
        variants = set(name.split('+'))
        assert args.fused_assign == ('on' if 'fused' in variants else 'off' if 'eager' in variants else 'auto')
        assert args.cluster == name.split('-')[0] and args.chunk_frames == (8 if '+chunk' in name else 0)
    for name in ('tsm-8+fused', 'slope-8+fused+eager', 'slope-8+fast', 'slope-8+fused+fused', 'slope-12'):
        assert not is_config(name), name
    assert is_config('slope-8+chunk', chunk=8) and not is_config('slope-8+chunk', chunk=0)  # K = 0: no chunking
    assert config_argv('slope-8+fused+norule', opts) == config_argv('slope-8+fused', opts)  # set on the model
    assert parse_profile_args(config_argv('slope-8', opts)).fused_assign == 'auto'


def test_tiny_run_gives_rows_ratios_and_markdown(tmp_path):
    out = tmp_path / 'bench.md'
    res = run(['--img_size', '16', '--frames', '16', '--iters', '1', '--warmup', '0', '--device', 'cpu',
               '--chunk_frames', '4', '--configs', 'tsm-all', 'cumulative-8', 'cumulative-8+chunk',
               '--long', '--long_frames', '16', '48', '--out', str(out)])
    rows = {r['name']: r for r in res['rows']}
    for row in rows.values():
        assert all(key in row for key in KEYS)
        assert row['videos_per_s'] > 0
    assert rows['tsm-all']['frames'] == 16 and res['ref'] is rows['tsm-all']
    assert rows['cumulative-8']['cluster_share'] is not None and rows['tsm-all']['cluster_share'] is None
    c8 = rows['cumulative-8']  # forward and backward both timed, each a part of a step
    assert 0 < c8['cluster_ms'] < c8['step_ms'] and 0 < c8['cluster_backward_ms'] < c8['step_ms']
    assert rows['cumulative-8+chunk']['cluster_backward_ms'] is None  # the chunked path times its assignment
    assert rows['cumulative-8+chunk']['activation_mb'] < rows['cumulative-8']['activation_mb']
    short, long_ = res['long']
    assert long_['frames'] == 48 and long_['activation_mb'] < 1.25 * short['activation_mb']
    text = out.read_text()
    assert '| tsm-all |' in text and 'long videos' in text


def test_unknown_config_is_an_error():
    with pytest.raises(SystemExit, match='unknown --configs'):
        run(['--configs', 'tsm-7', '--device', 'cpu'])


def test_reference_is_measured_when_not_chosen():
    res = run(['--img_size', '32', '--frames', '16', '--iters', '1', '--warmup', '0', '--device', 'cpu',
               '--configs', 'tsm-8'])
    ref, tsm8 = res['ref'], res['rows'][0]
    assert ref['name'] == 'tsm-all' and ref['step_ms'] is None  # memory only
    assert tsm8['activation_mb'] == pytest.approx(ref['activation_mb'] / 2, rel=1e-3)  # linear in frames
    assert '| tsm-8 |' in res['markdown']


@pytest.mark.skipif(shutil.which('g++') is None and shutil.which('c++') is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_norule_compiles_only_the_distances(monkeypatch):
    """+fused compiles the distances, the rule and the mean weights; +fused+norule only the distances."""
    from ops import compiled as compile_cache
    for name, compiled in (('cumulative-8+fused+norule', {'differing_signs'}),
                           ('cumulative-8+fused', {'differing_signs', 'cumulative_assign', 'cluster_weights'})):
        monkeypatch.setattr(compile_cache, 'CACHE', compile_cache.CompileCache())
        run(['--img_size', '16', '--frames', '16', '--iters', '1', '--warmup', '0', '--device', 'cpu',
             '--configs', name])
        assert set(compile_cache.CACHE.functions) == compiled, name  # compiled functions
        assert not compile_cache.fused_failed()


def test_tiny_run_of_a_clip_backbone():
    """r3d_18 (a 3D CNN): no --shift in its commands, a clip of F frames as the reference, clustering after layer1."""
    res = run(['--arch', 'r3d_18', '--img_size', '16', '--frames', '16', '--iters', '1', '--warmup', '0',
               '--device', 'cpu', '--configs', 'tsm-all', 'cumulative-8'])
    rows = {r['name']: r for r in res['rows']}
    assert rows['tsm-all']['frames'] == 16 and rows['cumulative-8']['clusters'] == 8
    assert rows['cumulative-8']['activation_mb'] < rows['tsm-all']['activation_mb']
    assert rows['cumulative-8']['cluster_ms'] > 0 and rows['tsm-all']['videos_per_s'] > 0
    assert '--shift' not in config_argv('tsm-8', build_parser().parse_args(['--arch', 'r3d_18']))
    with pytest.raises(SystemExit, match='clip backbone'):
        run(['--arch', 'r3d_18', '--device', 'cpu', '--configs', 'cumulative-8+chunk'])
