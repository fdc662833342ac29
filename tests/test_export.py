"""The export path of ops/clustering.py and tools/export.py: ONNX / TorchScript / ExportedProgram files that
give the checkpoint's logits, and tools/test_models.py evaluating an ONNX file."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ops.clustering import TemporalClustering, slope_assign
from ops.hamming import neighbour_hamming

ROOT = Path(__file__).resolve().parent.parent


def tied_activations(n: int, t: int, seed: int) -> torch.Tensor:
    """(N, T, 4, 3, 3) activations with repeated frames and few distinct signs, so distances tie often."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(-1, 2, (n, t, 4, 3, 3), generator=g).float()
    repeat = torch.rand(n, t, generator=g) < 0.3
    for i in range(1, t):  # some frames copy the one before: distance 0, ties among zeros
        base[:, i] = torch.where(repeat[:, i, None, None, None], base[:, i - 1], base[:, i])
    return base


@pytest.mark.parametrize('method', ['cumulative', 'slope', 'uniform'])
@pytest.mark.parametrize('G', [1, 3, 8, 20])
def test_exportable_clustering_gives_the_same_distances_and_assignments(method, G):
    for seed in range(6):
        x = tied_activations(5, 14, seed)
        lengths = torch.tensor([14, 9, 2, 1, 5])
        torch.testing.assert_close(neighbour_hamming(x, lengths, packed=False), neighbour_hamming(x, lengths),
                                   rtol=0, atol=0)
        packed, plain = TemporalClustering(method, G), TemporalClustering(method, G, exportable=True)
        flat = x.flatten(0, 1)
        for lens in (lengths, None):
            out_packed, out_plain = packed(flat, 14, lens), plain(flat, 14, lens)
            assert torch.equal(packed.last_assign, plain.last_assign), (method, G, seed)
            assert torch.equal(out_packed, out_plain)


def test_sortless_slope_breaks_ties_as_the_stable_sort():
    # every distance equal: the cuts are the first G-1 pairs; a pattern with a planted tie at the top
    for dist in (torch.full((2, 9), 0.25), torch.tensor([[0.1, 0.5, 0.2, 0.5, 0.5, 0.0, 0.5, 0.1]])):
        for G in (2, 3, 5, 12):
            assert torch.equal(slope_assign(dist, G, sortless=True), slope_assign(dist, G))
    assign = slope_assign(torch.tensor([[0.1, 0.5, 0.2, 0.5, 0.5, 0.0, 0.5, 0.1]]), 3, sortless=True)
    assert assign.tolist() == [[0, 0, 1, 1, 2, 2, 2, 2, 2]]  # cuts after pairs 1 and 3, the earliest maxima


# ------------------------------------------------------------------------------------------ tools/export.py
MODEL = ['--arch', 'resnet18', '--shift', '--pretrain', 'scratch', '--img_size', '32']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Tiny Move4MNIST (32 px) and two checkpoints laid out as main.py saves them (random weights, BatchNorm
    statistics moved off the identity): TSM (4 segments), cumulative clustering of all frames into 4 clusters.
    (tests/test_demo.py trains its checkpoints through main.py.)"""
    import opts
    from ops.checkpoint import save_checkpoint
    from builder import build_model
    from tools.make_move4mnist import main as make_move4mnist
    tmp = tmp_path_factory.mktemp('export')
    data = tmp / 'data'
    make_move4mnist(['--out', str(data), '--num_train', '2', '--num_val', '3', '--seed', '0', '--size', '32'])
    ckpts = {}
    for name, flags in (('tsm', ['--num_segments', '4']),
                        ('cluster', ['--num_segments', '4', '--cluster', 'cumulative', '--frames', 'all'])):
        args = opts.parse_args(['move4mnist', 'RGB', '--root_path', str(data), *MODEL, *flags])
        torch.manual_seed(len(ckpts))
        model = build_model(args, 4, print_spec=False)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        ckpts[name] = str(tmp / f'{name}.pth.tar')
        save_checkpoint({'epoch': 1, 'arch': 'resnet18', 'state_dict': model.state_dict(), 'best_prec1': 0.0,
                         'args': vars(args), 'class_names': ['left', 'right', 'up', 'down']}, ckpts[name])
    return data, ckpts


def own_model(ckpt_path: str):
    """The checkpoint's model built here from its args (independently of the tool under test)."""
    import opts
    from builder import build_model
    ckpt = torch.load(ckpt_path, weights_only=True)
    saved = ckpt['args']
    args = opts.parse_args([saved['dataset'], 'RGB'])
    vars(args).update(saved)
    model = build_model(args, 4, print_spec=False, pretrain='scratch')
    model.load_state_dict(ckpt['state_dict'])
    return model.eval()


def test_clustering_model_exports_to_onnx_with_dynamic_frames_and_evaluates_as_the_checkpoint(trained, tmp_path,
                                                                                               capsys):
    import onnx
    import onnxruntime as ort
    from tools import export, test_models
    data, ckpts = trained
    out = tmp_path / 'cluster.onnx'
    result = export.main([ckpts['cluster'], str(out), '--root_path', str(data)])
    text = capsys.readouterr().out
    assert 'verified: onnx vs PyTorch on 4 inputs' in text and '/jpg/val/' in text.split('clip ')[1].split(':')[0]
    assert result['max_diff'] <= 1e-4 and result['frames'] is None
    onnx.checker.check_model(str(out))
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta['frames'] == 'dynamic' and json.loads(meta['class_names']) == ['left', 'right', 'up', 'down']
    # onnxruntime on frame counts the export never saw, with padding, against the model built here
    session, model = ort.InferenceSession(str(out)), own_model(ckpts['cluster'])
    for n, t in ((1, 25), (2, 6), (3, 40)):
        x, lengths = torch.randn(n, 3 * t, 32, 32), torch.tensor([t, t - 2, 3][:n])
        with torch.no_grad():
            ref = model(x, lengths)
        got = session.run(None, {'frames': x.numpy(), 'lengths': lengths.numpy()})[0]
        assert abs(got - ref.numpy()).max() <= 1e-4
    flags = ['--root_path', str(data), '-j', '0', '--device', 'cpu', '--out_dir', str(tmp_path), '--batch_size', '2']
    onnx_scores = test_models.main(['--weights', str(out), *flags])['scores']
    ckpt_scores = test_models.main(['--weights', ckpts['cluster'], *flags])['scores']
    assert onnx_scores.shape == (3, 4) and abs(onnx_scores - ckpt_scores).max() <= 1e-3


@pytest.mark.parametrize('fmt,name,flags', [('onnx', 'tsm.onnx', ['--exporter', 'torchscript']),
                                            ('torchscript', 'tsm.pt', []), ('exported_program', 'tsm.pt2', [])])
def test_tsm_exports_in_each_format(trained, tmp_path, fmt, name, flags, capsys):
    from tools import export
    data, ckpts = trained
    out = tmp_path / name
    if fmt == 'torchscript':  # the fastest: run as a user does, from the command line
        run = subprocess.run([sys.executable, str(ROOT / 'tools' / 'export.py'), ckpts['tsm'], str(out),
                              '--root_path', str(data), *flags], capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        text = run.stdout
    else:
        export.main([ckpts['tsm'], str(out), '--root_path', str(data), *flags])
        text = capsys.readouterr().out
    assert f'verified: {fmt} vs PyTorch on 4 inputs' in text
    x = torch.randn(5, 12, 32, 32)  # a batch size the export never saw
    with torch.no_grad():
        ref = own_model(ckpts['tsm'])(x)
    if fmt == 'onnx':
        import onnxruntime as ort
        got = torch.from_numpy(ort.InferenceSession(str(out)).run(None, {'frames': x.numpy()})[0])
    elif fmt == 'torchscript':
        got = torch.jit.load(str(out))(x)
    else:
        got = torch.export.load(str(out)).module()(x)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-4)


def test_a_failed_check_exits_nonzero_and_says_so(trained, tmp_path, capsys):
    from tools import export
    _, ckpts = trained
    with pytest.raises(SystemExit) as stop:
        export.main([ckpts['tsm'], str(tmp_path / 'x.pt'), '--atol', '-1'])
    assert stop.value.code == 1 and 'FAILED: torchscript vs PyTorch' in capsys.readouterr().out


def test_a_trace_of_an_all_frames_model_needs_a_fixed_frame_count(trained, tmp_path):
    from tools import export
    _, ckpts = trained
    with pytest.raises(ValueError, match='give --frames F'):
        export.main([ckpts['cluster'], str(tmp_path / 'x.pt')])
    result = export.main([ckpts['cluster'], str(tmp_path / 'x.pt'), '--frames', '12'])
    assert result['frames'] == 12 and result['max_diff'] <= 1e-4
