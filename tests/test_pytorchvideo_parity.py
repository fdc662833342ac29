"""pytorchvideo's own networks against ours: names, shapes and logits (runs only where pytorchvideo imports).

pytorchvideo is not a dependency (its last release, 0.1.5, no longer imports its transforms with current
torchvision); its ``pytorchvideo.models`` package still imports. To run these checks:

    pip install --no-deps --target /tmp/pvlib pytorchvideo==0.1.5 fvcore iopath yacs tabulate termcolor portalocker
    PYTHONPATH=/tmp/pvlib:$PWD python -m pytest -q tests/test_pytorchvideo_parity.py

Each test builds the model zoo's network with pytorchvideo's builder (random weights, BatchNorm statistics
randomised), saves it as the zoo's ``.pyth`` (``model_state``), converts it with tools/convert_checkpoint.py,
loads the result into our TSN wrapper as main.py and tools/test_models.py do, and compares the logits on the
same clip. pytorchvideo's X3D ends in a softmax by default (``head_activation=nn.Softmax``), applied to each
head window before the windows are averaged; ours returns logits, so the logits are compared with that softmax
off, and the probabilities with it on where the head has one window (input at the training size).
"""
from pathlib import Path

import pytest
import torch

pv_hub = pytest.importorskip('pytorchvideo.models.hub', reason='pytorchvideo is not installed (optional check)')
from pytorchvideo.models.slowfast import create_slowfast  # noqa: E402

from ops.checkpoint import load_checkpoint, load_model_weights  # noqa: E402
from ops.models import TSN  # noqa: E402
from tools import convert_checkpoint  # noqa: E402
from test_convert_checkpoint import pytorchvideo_file as zoo_file  # noqa: E402 (the zoo's layout, BN statistics random)


def ours_from(src: str, tmp_path: Path, arch: str, frames: int, alpha=None) -> TSN:
    """The zoo file converted (tools/convert_checkpoint.py) and loaded into our TSN, strictly, in eval mode."""
    dst = str(tmp_path / 'ours.pth.tar')
    flags = [] if alpha is None else ['--slowfast_alpha', str(alpha)]
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', arch, *flags]) == 0
    stored = load_checkpoint(dst)
    options = {} if alpha is None else {'alpha': stored['args']['slowfast_alpha'],
                                        'slow_frames': stored['args']['slowfast_slow_frames']}
    model = TSN(400, frames, 'RGB', base_model=arch, pretrain='scratch', backbone_options=options)
    load_model_weights(model, stored['state_dict'], dst)
    return model.eval()


def tsn_input(clip: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N, T*3, H, W), the layout our data loader gives TSN."""
    n, c, t, h, w = clip.shape
    return clip.transpose(1, 2).reshape(n, t * c, h, w)


@pytest.mark.parametrize('arch,frames,sizes', [('x3d_xs', 4, (160, 182)), ('x3d_s', 13, (160, 182)),
                                               ('x3d_m', 16, (224, 256)), ('x3d_l', 16, (312,))])
def test_x3d_logits_equal_pytorchvideos(arch, frames, sizes, tmp_path):
    torch.manual_seed(0)
    theirs = getattr(pv_hub, arch)(pretrained=False, head_activation=None).eval()
    ours = ours_from(zoo_file(theirs, tmp_path / f'{arch}.pyth'), tmp_path, arch, frames)
    for size in sizes:  # 182 > 160: the head pools 2x2 windows of the 160 px training window, then averages
        clip = torch.randn(2, 3, frames, size, size)
        with torch.no_grad():
            torch.testing.assert_close(ours(tsn_input(clip)), theirs(clip), rtol=1e-4, atol=1e-5)


def test_x3d_probabilities_equal_pytorchvideos_default_softmax_head_at_the_training_size(tmp_path):
    torch.manual_seed(0)
    theirs = pv_hub.x3d_xs(pretrained=False).eval()  # the hub's default: softmax per head window
    ours = ours_from(zoo_file(theirs, tmp_path / 'X3D_XS.pyth'), tmp_path, 'x3d_xs', 4)
    with torch.no_grad():  # logits of a trained network's size (random weights give ~0.1: softmax nearly linear)
        theirs.blocks[-1].proj.weight.mul_(100)
        ours.new_fc.weight.mul_(100)
        clip = torch.randn(2, 3, 4, 160, 160)
        torch.testing.assert_close(ours(tsn_input(clip)).softmax(1), theirs(clip), rtol=1e-4, atol=1e-6)
        big = torch.randn(2, 3, 4, 182, 182)  # 2x2 windows: theirs averages 4 softmaxes, not softmax(mean logits)
        assert not torch.allclose(ours(tsn_input(big)).softmax(1), theirs(big), rtol=1e-4, atol=1e-7)  # ~0.1% off


@pytest.mark.parametrize('alpha,fusion_kernel', [(4, 7), (8, 5)])
def test_slowfast_logits_equal_pytorchvideos(alpha, fusion_kernel, tmp_path):
    """SLOWFAST_8x8_R50 (alpha 4, fusion kernel 7) and SLOWFAST_4x16_R50 (alpha 8, PySlowFast's FUSION_KERNEL_SZ 5)
    at 32 Fast frames, 224 px and the zoo's 256 px test size (2x2 head windows); pytorchvideo's network takes
    [slow, fast], ours the Fast clip."""
    torch.manual_seed(0)
    frames = 32
    theirs = create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(fusion_kernel, 1, 1),
                             slowfast_fusion_conv_stride=(alpha, 1, 1),
                             head_pool_kernel_sizes=((frames // alpha, 7, 7), (frames, 7, 7))).eval()
    ours = ours_from(zoo_file(theirs, tmp_path / 'SLOWFAST.pyth'), tmp_path, 'slowfast_r50', frames, alpha)
    for size in (224, 256):
        clip = torch.randn(1, 3, frames, size, size)
        with torch.no_grad():
            # the converted file stores slowfast_slow_frames 'linspace', the zoo's PackPathway: T/alpha evenly spaced
            packed = clip.index_select(2, torch.linspace(0, frames - 1, frames // alpha).long())
            torch.testing.assert_close(ours(tsn_input(clip)), theirs([packed, clip]), rtol=1e-4, atol=1e-5)


def test_the_stored_facts_are_pytorchvideos_state_dicts(pytorchvideo_state_dict):
    """tests/data/pytorchvideo_state_dicts.json.gz (what test_x3d.py and test_slowfast.py check every name and
    shape against, without pytorchvideo) is what pytorchvideo's builders give."""
    def shapes(net):
        return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]

    with torch.device('meta'):
        for name in ('x3d_xs', 'x3d_s', 'x3d_m'):
            assert shapes(getattr(pv_hub, name)(pretrained=False)) == pytorchvideo_state_dict('x3d_xs_s_m'), name
        assert shapes(pv_hub.x3d_l(pretrained=False)) == pytorchvideo_state_dict('x3d_l')
        for alpha, kernel in ((4, 7), (8, 5)):
            net = create_slowfast(model_depth=50, slowfast_fusion_conv_kernel_size=(kernel, 1, 1),
                                  slowfast_fusion_conv_stride=(alpha, 1, 1))
            assert shapes(net) == pytorchvideo_state_dict(f'slowfast_r50_alpha{alpha}'), alpha
