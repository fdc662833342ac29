"""tools/grad_check.py: G = F makes both networks one function, the cluster comparison by hand, the CLI."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import opts
from builder import build_model
from ops.runtime import set_seed
from tools.grad_check import all_frame_pass, capture_outputs, clustered_pass, compare_clusters, main, pair_distances
from tools.make_move4mnist import main as make_move4mnist
from tools.visualize_clusters import assign_all


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('m4') / 'data'
    make_move4mnist(['--out', str(out), '--num_train', '0', '--num_val', '4', '--seed', '0'])
    return out


def _model(cluster_after: int = 1, cluster: str = 'cumulative', segments: int = 8):
    args = opts.parse_args(['move4mnist', 'RGB', '--arch', 'resnet18', '--shift', '--pretrain', 'scratch',
                            '--cluster', cluster, '--cluster_after', str(cluster_after), '--img_size', '32',
                            '--num_segments', str(segments)])
    set_seed(0)
    model = build_model(args, 4, print_spec=False).eval()
    torch.nn.init.normal_(model.new_fc.weight, 0, 0.1)  # scores that depend on the input: a non-flat loss
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.mark.parametrize('cluster_after,block', [(1, 1), (1, 3), (2, 3)])
def test_as_many_clusters_as_frames_gives_the_true_gradient(cluster_after, block):
    """G = F: every method puts each frame in its own cluster, so the clustered network is the all-frame one."""
    f = 8
    model = _model(cluster_after)
    frames = torch.randn(2, f * 3, 32, 32)
    labels = torch.tensor([1, 3])
    x_c, _, grads = all_frame_pass(model, frames, labels, f, [block])
    assert grads[block].abs().sum() > 0
    for method, assign in assign_all(x_c, f, f).items():
        assert torch.equal(assign, torch.arange(f).expand(2, f)), method
        per = compare_clusters(grads[block], clustered_pass(model, x_c, assign, labels, f, block), assign, f)
        assert per['relative'].max() < 1e-5, method
        assert per['cosine'].min() > 1 - 1e-6, method


def _grad_at(model, frames, labels, layer):
    """dL/d(output of ``layer``) through the model's own forward (TSN.forward), loss summed over videos."""
    with capture_outputs(model, [layer]) as acts:
        loss = F.cross_entropy(model(frames), labels, reduction='sum')
    return torch.autograd.grad(loss, acts[layer])[0].reshape(frames.shape[0], -1, acts[layer][0].numel())


def test_both_networks_are_the_models_own_forward():
    """All-frame pass = TSM with --cluster none on all F frames; clustered pass = TSN.forward with clustering."""
    f, g = 8, 4
    clustered = _model(segments=g)
    tsm_all = _model(cluster='none', segments=f)
    tsm_all.load_state_dict(clustered.state_dict())
    frames = torch.randn(2, f * 3, 32, 32, requires_grad=True)
    labels = torch.tensor([0, 2])
    x_c, _, grads = all_frame_pass(clustered, frames, labels, f, [3])
    assert torch.allclose(grads[3], _grad_at(tsm_all, frames, labels, 3), rtol=1e-4, atol=1e-9)
    expected = _grad_at(clustered, frames, labels, 3)
    assign = clustered.clustering.last_assign
    clust = clustered_pass(clustered, x_c, assign, labels, g, 3)
    assert torch.allclose(clust, expected, rtol=1e-4, atol=1e-9)


def test_compare_clusters_by_hand():
    assign = torch.tensor([[0, 0, 0, 1]])              # F = 4, G = 2, cluster sizes 3 and 1
    true = torch.tensor([[[1., 0.], [1., 0.], [1., 0.], [0., 2.]]])
    clust = torch.tensor([[[2., 0.], [0., 4.]]])        # the linear prediction: sum_c * F / (G n_c)
    per = compare_clusters(true, clust, assign, 2)
    assert per['distance'] == pytest.approx([1.0, 2.0])  # true sums (3, 0) and (0, 2)
    assert per['relative'] == pytest.approx([1 / 3, 1.0])
    assert per['size_matched'] == pytest.approx([0.0, 0.0])
    assert per['cosine'] == pytest.approx([1.0, 1.0])


def test_pair_distances_by_hand():
    acts = torch.tensor([[1., -1.], [1., 1.], [-1., -1.]])
    grads = torch.tensor([[0., 0.], [3., 4.], [0., 1.]])
    pairs = pair_distances(acts, grads)                  # pairs (0,1), (0,2), (1,2)
    assert pairs['act_hamming'] == pytest.approx([0.5, 0.5, 1.0])
    assert pairs['act_euclidean'] == pytest.approx([2.0, 2.0, 8 ** 0.5])
    assert pairs['grad_euclidean'] == pytest.approx([5.0, 1.0, 18 ** 0.5])


def test_cli_writes_figures_and_json(data, tmp_path):
    out = tmp_path / 'out'
    result = main(['move4mnist', 'RGB', '--root_path', str(data), '--arch', 'resnet18', '--shift',
                   '--pretrain', 'scratch', '--img_size', '32', '--scale_size', '32', '--frames', '16',
                   '--num_segments', '4', '--num_videos', '2', '--device', 'cpu', '--out', str(out)])
    for name in ('fig5_activation_vs_gradient.png', 'fig6_gradient_distance.png'):
        path = out / name
        assert path.stat().st_size > 0
        with Image.open(path) as img:
            assert img.format == 'PNG' and img.size[0] > 100 and img.size[1] > 100
    saved = json.loads((out / 'grad_check.json').read_text())
    assert set(saved['fig6']) == {'uniform', 'slope', 'cumulative'}
    assert len(saved['fig6']['uniform']['per_cluster']['distance']) == 2 * 4  # 2 videos x G clusters
    assert len(saved['fig5']['per_video']) == 2 and saved['fig5']['pairs_per_video'] == 16 * 15 // 2
    assert saved['settings']['block'] == 'layer3' and result['settings'] == saved['settings']
