"""tools/test_models.py and tools/ensemble.py: views, score averaging, chunking, clustering, reports, ensembles."""
import json
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch
from PIL import Image

import main as train_main
import opts
from builder import build_model
from ops.checkpoint import save_checkpoint
from ops.sampling import clip_indices
from tools import ensemble, test_models

ROOT = Path(__file__).resolve().parent.parent


def model_flags(*extra: str) -> List[str]:
    return ['--arch', 'resnet18', '--shift', '--pretrain', 'scratch', '--img_size', '32', '--scale_size', '36',
            *extra]


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """A tiny data set, and checkpoints (random weights, with the args main.py saves) of a TSM and of a
    clustering model; the clustering list gives the videos different lengths."""
    from tools.make_move4mnist import main as make_move4mnist
    tmp = tmp_path_factory.mktemp('tm')
    data = tmp / 'data'
    make_move4mnist(['--out', str(data), '--num_train', '4', '--num_val', '6', '--seed', '0'])
    lines = (data / 'val_videofolder.txt').read_text().split('\n')
    lengths = [12, 16, 6, 14, 5, 16]
    (data / 'val_short.txt').write_text('\n'.join(f"{ln.split()[0]} {n} {ln.split()[2]}"
                                                  for ln, n in zip(lines, lengths)) + '\n')
    ckpts = {}
    for name, flags in (('tsm', ['--num_segments', '4']), ('tsm8', ['--num_segments', '8']),
                        ('cluster', ['--num_segments', '4', '--cluster', 'cumulative', '--frames', 'all'])):
        args = opts.parse_args(['move4mnist', 'RGB', '--root_path', str(data), *model_flags(*flags)])
        torch.manual_seed(len(ckpts))
        model = build_model(args, 4, print_spec=False)
        ckpts[name] = str(tmp / f'{name}.pth.tar')
        save_checkpoint({'epoch': 1, 'arch': 'resnet18', 'state_dict': model.state_dict(), 'best_prec1': 0.0,
                         'args': vars(args)}, ckpts[name])
    return data, ckpts


@pytest.fixture(scope='module')
def clip_setup(setup, tmp_path_factory):
    """The data of ``setup`` and a clip backbone's checkpoint (mc3_18, clips of 4 frames at stride 2)."""
    data, ckpts = setup
    args = opts.parse_args(['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'mc3_18', '--pretrain',
                            'scratch', '--img_size', '32', '--scale_size', '36', '--num_segments', '4',
                            '--sample_rate', '2'])
    torch.manual_seed(5)
    model = build_model(args, 4, print_spec=False)
    path = str(tmp_path_factory.mktemp('clip') / 'mc3.pth.tar')
    save_checkpoint({'epoch': 1, 'arch': 'mc3_18', 'state_dict': model.state_dict(), 'best_prec1': 0.0,
                     'args': vars(args)}, path)
    return data, {**ckpts, 'mc3': path}


def run(setup, tmp_path, weights: str, *flags: str) -> dict:
    data, ckpts = setup
    paths = ','.join(ckpts[w] for w in weights.split(','))
    return test_models.main(['--weights', paths, '--root_path', str(data), '-j', '0', '--device', 'cpu',
                             '--out_dir', str(tmp_path), *flags])


def test_one_view_scores_are_the_validation_logits(setup, tmp_path):
    data, ckpts = setup
    result = run(setup, tmp_path, 'tsm')
    evaluated = train_main.main(['move4mnist', 'RGB', '--root_path', str(data), *model_flags('--num_segments', '4'),
                                 '-j', '0', '-b', '3', '--device', 'cpu', '--evaluate', '--resume', ckpts['tsm']])
    scores = torch.from_numpy(result['scores'])
    loss = torch.nn.functional.cross_entropy(scores, torch.from_numpy(result['labels'])).item()
    assert result['count'] == evaluated['count'] == 6 and result['top1'] == pytest.approx(evaluated['top1'])
    assert loss == pytest.approx(evaluated['loss'], abs=1e-5)


def test_many_views_chunked_equal_unchunked(setup, tmp_path, capsys):
    views = ['--test_crops', '10', '--num_clips', '2', '--batch_size', '2', '--max_num', '2']
    whole = run(setup, tmp_path, 'tsm', *views)
    assert '2 videos x 20 views (2 clips x 10 crops)' in capsys.readouterr().out
    chunked = run(setup, tmp_path, 'tsm', *views, '--max_views_per_batch', '7')
    np.testing.assert_allclose(chunked['scores'], whole['scores'], rtol=1e-5, atol=1e-6)
    one = run(setup, tmp_path, 'tsm', '--max_num', '2')
    assert not np.allclose(one['scores'], whole['scores'])  # the views do change the average


def test_softmax_averages_probabilities(setup, tmp_path):
    result = run(setup, tmp_path, 'tsm', '--test_crops', '5', '--softmax', '--max_views_per_batch', '4',
                 '--max_num', '3', '--batch_size', '3')
    np.testing.assert_allclose(result['scores'].sum(axis=1), 1.0, rtol=1e-5)
    assert (result['scores'] > 0).all()


@pytest.mark.parametrize('flags,views', [
    (['--twice_sample'], '2 views (2 clips x 1 crops)'),
    (['--dense_sample', '--test_crops', '3'], '30 views (10 clips x 3 crops)'),
    (['--full_res', '--test_crops', '3'], '3 views (1 clips x 3 crops, full res)')])
def test_sampling_options(setup, tmp_path, capsys, flags, views):
    result = run(setup, tmp_path, 'tsm', *flags, '--batch_size', '2', '--max_num', '2')
    assert views in capsys.readouterr().out and result['scores'].shape == (2, 4)


def test_full_video_clustering_ignores_padding(setup, tmp_path):
    """--frames all: videos of 5..16 frames; batching pads them, ``lengths`` keeps the padding out."""
    alone = run(setup, tmp_path, 'cluster', '--test_list', 'val_short.txt')
    batched = run(setup, tmp_path, 'cluster', '--test_list', 'val_short.txt', '--batch_size', '4',
                  '--max_views_per_batch', '3')
    np.testing.assert_allclose(batched['scores'], alone['scores'], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match='clusters the whole video'):
        run(setup, tmp_path, 'cluster', '--num_clips', '2')


def test_reports_and_score_dump(setup, tmp_path):
    dump = tmp_path / 'scores.npz'
    result = run(setup, tmp_path, 'tsm', '--tag', 'r', '--save_scores', str(dump))
    rows = (tmp_path / 'r_per_class.csv').read_text().splitlines()
    assert rows[0] == 'class_id,class_name,videos,correct,accuracy' and len(rows) == 5 and ',left,' in rows[1]
    confusion = np.load(tmp_path / 'r_confusion.npy')
    assert confusion.shape == (4, 4) and confusion.sum() == 6
    assert np.trace(confusion) == round(result['top1'] * 6 / 100)
    with Image.open(tmp_path / 'r_confusion.png') as png:
        assert png.size[0] >= 300 and png.size[1] >= 300
    assert json.loads((tmp_path / 'r_result.json').read_text())['count'] == 6
    with np.load(dump, allow_pickle=False) as f:
        assert f['scores'].shape == (6, 4) and f['labels'].tolist() == result['labels'].tolist()
        assert f['paths'][0].endswith('left_0') and f['class_names'].tolist() == ['left', 'right', 'up', 'down']


def test_metrics_by_hand():
    scores = np.array([[.9, .1, 0], [.2, .8, 0], [.6, .4, 0], [0, .3, .7]])
    m = test_models.metrics(scores, np.array([0, 1, 1, 1]), 3)
    assert m['top1'] == 50.0 and m['top5'] == 100.0
    assert m['mean_class_accuracy'] == pytest.approx(100 * (1 + 1 / 3) / 2)  # class 2 has no video: not counted
    assert m['confusion'].tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]


def test_ensemble_in_test_models_and_from_score_dumps(setup, tmp_path):
    a, b = tmp_path / 'a.npz', tmp_path / 'b.npz'
    sa = run(setup, tmp_path, 'tsm', '--save_scores', str(a))['scores']
    sb = run(setup, tmp_path, 'tsm8', '--save_scores', str(b))['scores']
    both = run(setup, tmp_path, 'tsm,tsm8', '--coeff', '1,0.5')
    np.testing.assert_allclose(both['scores'], sa + 0.5 * sb, rtol=1e-6)
    combined = ensemble.main([str(a), str(b), '--coeff', '1', '0.5'])
    np.testing.assert_allclose(combined['scores'], sa + 0.5 * sb, rtol=1e-6)
    assert combined['top1'] == both['top1']
    proc = subprocess.run([sys.executable, 'tools/ensemble.py', str(b), str(a), '--coeff', '0.5', '1', '--out_dir',
                           str(tmp_path / 'e')], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"Overall Prec@1 {both['top1']:.02f}%" in proc.stdout
    assert (tmp_path / 'e' / 'ensemble_confusion.png').exists()
    with np.load(b) as f:
        np.savez(tmp_path / 'bad.npz', scores=f['scores'], labels=f['labels'][::-1], paths=f['paths'])
    with pytest.raises(ValueError, match='label'):
        ensemble.main([str(a), str(tmp_path / 'bad.npz')])


def test_tsm_checkpoint_without_args_takes_model_flags(setup, tmp_path):
    data, ckpts = setup
    bare = tmp_path / 'TSM_move4mnist_RGB_resnet18_shift8_blockres_avg_segment4.pth'
    state = torch.load(ckpts['tsm'], weights_only=True)['state_dict']
    torch.save({'epoch': 1, 'arch': 'resnet18', 'best_prec1': 0.0,
                'state_dict': {'module.' + k: v for k, v in state.items()}}, bare)
    with pytest.raises(ValueError, match='no .args.'):
        test_models.main(['--weights', str(bare), '--root_path', str(data), '-j', '0', '--out_dir', str(tmp_path)])
    result = test_models.main(['move4mnist', '--weights', str(bare), '--root_path', str(data), '-j', '0',
                               '--device', 'cpu', '--out_dir', str(tmp_path), *model_flags('--num_segments', '4')])
    np.testing.assert_allclose(result['scores'], run(setup, tmp_path, 'tsm')['scores'], rtol=1e-6)
    assert result['count'] == 6
    with pytest.raises(ValueError, match='arch'):  # the checkpoint's own args decide
        run(setup, tmp_path, 'tsm', '--arch', 'resnet34')


@pytest.mark.parametrize('flags,named', [(['--batch_size', '0'], '--batch_size'), (['-j', '-1'], '--workers'),
                                         (['--num_clips', '0'], '--num_clips'), (['--img_size', '0'], '--input_size'),
                                         (['--max_views_per_batch', '-2'], '--max_views_per_batch')])
def test_bad_tool_flag_values_exit_2_naming_the_flag(flags, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        test_models.main(['--weights', 'x.pth', *flags])
    assert exit_.value.code == 2 and named in capsys.readouterr().err


def test_test_segments_and_frames_are_checked(setup, tmp_path):
    with pytest.raises(ValueError, match='--test_segments'):
        run(setup, tmp_path, 'tsm', '--test_segments', '0')
    with pytest.raises(ValueError, match='--num_segments 16 clusters from --frames 8'):
        run(setup, tmp_path, 'cluster', '--test_segments', '16', '--frames', '8')


def test_clip_backbone_takes_the_fields_views_of_strided_clips(clip_setup, tmp_path, capsys, monkeypatch):
    """--test_clips 10 --test_crops 3: ten clips of T frames at stride tau spread over the video, three crops,
    scores averaged; one view is the centre clip, main.py's validation."""
    import ops.dataset
    data, ckpts = clip_setup
    calls = []
    monkeypatch.setattr(ops.dataset, 'clip_indices', lambda *a, **k: calls.append((a, k)) or clip_indices(*a, **k))
    many = run(clip_setup, tmp_path, 'mc3', '--test_clips', '10', '--test_crops', '3', '--max_num', '2',
               '--batch_size', '2', '--max_views_per_batch', '12')
    assert '2 videos x 30 views (10 clips x 3 crops)' in capsys.readouterr().out
    assert calls and all(a[1:] == (4, 2, 'test') and k == {'num_clips': 10} for a, k in calls)
    one = run(clip_setup, tmp_path, 'mc3')
    assert not np.allclose(one['scores'][:2], many['scores'])  # the views do change the average
    calls.clear()
    evaluated = train_main.main(['move4mnist', 'RGB', '--root_path', str(data), '-j', '0', '-b', '3', '--device',
                                 'cpu', '--evaluate', '--resume', ckpts['mc3']])
    assert calls and all(a[1:] == (4, 2, 'test') and k == {'num_clips': 1} for a, k in calls)  # the centre clip
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(one['scores']), torch.from_numpy(one['labels']))
    assert one['count'] == evaluated['count'] == 6 and loss.item() == pytest.approx(evaluated['loss'], abs=1e-5)
    for flags in (['--twice_sample'], ['--dense_sample']):
        with pytest.raises(ValueError, match='clip backbone'):
            run(clip_setup, tmp_path, 'mc3', *flags)


@pytest.mark.parametrize('flags', [['--num_segments', '4'],
                                   ['--num_segments', '4', '--cluster', 'cumulative', '--frames', '8']],
                         ids=['clip', 'clustered'])
def test_clip_backbone_checkpoint_scores_are_the_validation_logits(setup, tmp_path, flags):
    """r3d_18 (a 3D CNN) as a 4-frame clip and clustered 8 -> 4 after layer1: the default view of test_models.py
    (one centre clip, one centre crop) gives main.py --evaluate's validation."""
    data, _ = setup
    clip_flags = ['--arch', 'r3d_18', '--pretrain', 'scratch', '--img_size', '32', '--scale_size', '36', *flags]
    args = opts.parse_args(['move4mnist', 'RGB', '--root_path', str(data), *clip_flags])
    torch.manual_seed(11)
    ckpt = str(tmp_path / 'r3d.pth.tar')
    save_checkpoint({'epoch': 1, 'arch': 'r3d_18', 'state_dict': build_model(args, 4, print_spec=False).state_dict(),
                     'best_prec1': 0.0, 'args': vars(args)}, ckpt)
    result = test_models.main(['--weights', ckpt, '--root_path', str(data), '-j', '0', '--device', 'cpu',
                               '--out_dir', str(tmp_path)])
    evaluated = train_main.main(['move4mnist', 'RGB', '--root_path', str(data), *clip_flags, '-j', '0', '-b', '3',
                                 '--device', 'cpu', '--evaluate', '--resume', ckpt])
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(result['scores']),
                                             torch.from_numpy(result['labels'])).item()
    assert result['count'] == evaluated['count'] == 6 and result['top1'] == pytest.approx(evaluated['top1'])
    assert loss == pytest.approx(evaluated['loss'], abs=1e-5)
