"""tools/visualize_clusters.py: purity by hand, the PNGs and JSON of a fresh model and of two checkpoints."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import opts
from builder import build_model
from ops.checkpoint import save_checkpoint
from tools.make_move4mnist import main as make_move4mnist
from tools.visualize_clusters import cluster_purity, main, purity_summary

TINY = ['--arch', 'resnet18', '--shift', '--pretrain', 'scratch', '--img_size', '32', '--scale_size', '32',
        '--frames', '16', '--num_segments', '4', '--device', 'cpu']


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('m4') / 'data'
    make_move4mnist(['--out', str(out), '--num_train', '0', '--num_val', '4', '--seed', '0'])
    return out


def _check_png(path: Path) -> None:
    assert path.stat().st_size > 0
    with Image.open(path) as img:
        img.verify()
        assert img.format == 'PNG'
    with Image.open(path) as img:
        assert img.size[0] > 100 and img.size[1] > 100


def test_purity_of_a_hand_made_assignment():
    assign = [0, 0, 0, 1, 1, 2, 2, 2]
    relevance = [1, 1, 0, 0, 0, 1, 1, 1]   # cluster 0 mixes (2 of 3 informative), 1 and 2 are pure
    clusters, mixed, purities, sizes = cluster_purity(assign, relevance)
    assert (clusters, mixed, sizes) == (3, 1, [3, 2, 3])
    assert purities == pytest.approx([2 / 3, 1.0, 1.0])
    summary = purity_summary([np.array(assign), np.array([0, 1, 2, 3])],
                             [np.array(relevance), np.array([1, 0, 1, 0])])  # second video: 4 pure singletons
    assert summary['clusters'] == 7 and summary['mixed_clusters'] == 1
    assert summary['mixed_share'] == pytest.approx(1 / 7)
    assert summary['mean_purity'] == pytest.approx((2 / 3 + 6) / 7)
    assert summary['frame_purity'] == pytest.approx((2 + 2 + 3 + 4) / 12)  # majority frames / frames
    assert summary['singletons'] == 4


def test_fresh_model_writes_one_png_per_video_and_the_summary(data, tmp_path):
    out = tmp_path / 'out'
    summary = main(['move4mnist', 'RGB', '--root_path', str(data), *TINY, '--num_videos', '2', '--out', str(out)])
    pngs = sorted(out.glob('clusters_*.png'))
    assert len(pngs) == 2
    for png in pngs:
        _check_png(png)
    saved = json.loads((out / 'clusters.json').read_text())
    assert set(saved['purity']) == {'uniform', 'slope', 'cumulative'}
    for method, rows in saved['assignments'].items():
        for row in rows:  # every video: 16 frames in 4 contiguous, non-empty clusters
            assert len(row) == 16 and sorted(set(row)) == [0, 1, 2, 3] and row == sorted(row)
    # uniform with F = 16, G = 4: clusters of 4 frames, so the summary counts 2 videos x 4 clusters
    assert saved['purity']['uniform']['clusters'] == 8
    assert summary['purity'] == saved['purity']


def test_checkpoints_decide_the_network_and_give_one_row_each(data, tmp_path):
    train = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--shift', '--pretrain', 'scratch',
                             '--cluster', 'cumulative', '--num_segments', '4', '--img_size', '32'])
    paths = []
    for epoch in (1, 2):
        model = build_model(train, 4, print_spec=False)
        path = tmp_path / f'ckpt_e{epoch}.pth.tar'
        save_checkpoint({'epoch': epoch, 'state_dict': model.state_dict(), 'args': vars(train)}, str(path))
        paths.append(str(path))
    out = tmp_path / 'out'
    # no --arch here: main.py's default (resnet50) would not load these files, the checkpoint's resnet18 does
    summary = main(['move4mnist', 'RGB', '--root_path', str(data), '--weights', *paths, '--num_videos', '1',
                    '--frames', '16', '--device', 'cpu', '--out', str(out)])
    assert summary['models'] == ['epoch 1', 'epoch 2']
    assert summary['clusters'] == 4  # G from the checkpoint's --num_segments
    (png,) = out.glob('clusters_*.png')
    _check_png(png)
