"""tools/convert_checkpoint.py --from pytorchvideo: pytorchvideo's X3D and SlowFast checkpoints as ours.

The source files are made here in pytorchvideo's layout (a dict whose ``model_state`` is the network's state dict,
with the ``epoch`` and ``cfg`` PySlowFast adds), from our networks, whose names are pytorchvideo's
(tests/test_x3d.py and tests/test_slowfast.py check those names against pytorchvideo's).
"""
from pathlib import Path

import pytest
import torch

from archs.slowfast import build_slowfast
from archs.x3d import build_x3d
from ops.checkpoint import CheckpointError, load_checkpoint, load_model_weights
from ops.models import TSN
from tools import convert_checkpoint


def pytorchvideo_file(net: torch.nn.Module, path: Path, cfg: str = 'TRAIN:\n  DATASET: kinetics\n') -> str:
    """``net`` saved as pytorchvideo's model zoo saves it; BatchNorm statistics made non-trivial first."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save({'model_state': net.state_dict(), 'epoch': 300, 'cfg': cfg}, path)
    return str(path)


# the shape of PySlowFast's cfg.dump() (yacs YAML), cut to the keys the converter reads and a few neighbours
X3D_S_CFG = """DATA:
  INPUT_CHANNEL_NUM:
  - 3
  NUM_FRAMES: 13
  SAMPLING_RATE: 6
  TRAIN_CROP_SIZE: 160
  TEST_CROP_SIZE: 182
MODEL:
  ARCH: x3d
  # a comment: ignored
  NUM_CLASSES: 400
SLOWFAST:
  ALPHA: 8
"""


def test_the_stored_config_is_read_to_two_levels():
    values = convert_checkpoint.config_values(X3D_S_CFG)
    assert values['DATA.NUM_FRAMES'] == '13' and values['DATA.TRAIN_CROP_SIZE'] == '160'
    assert values['MODEL.ARCH'] == 'x3d' and values['SLOWFAST.ALPHA'] == '8' and values['DATA.INPUT_CHANNEL_NUM'] == ''
    assert convert_checkpoint.config_values({'DATA': {'NUM_FRAMES': 4}, 'RNG_SEED': 0}) == {'DATA.NUM_FRAMES': '4'}
    assert convert_checkpoint.config_values(None) == {}
    flow = convert_checkpoint.config_values('SLOWFAST: {ALPHA: 8, FUSION_KERNEL_SZ: 5}\nRNG_SEED: 0\n')
    assert flow == {'SLOWFAST.ALPHA': '8', 'SLOWFAST.FUSION_KERNEL_SZ': '5'}  # an older PyYAML's flow style


def test_an_x3d_file_is_checked_against_its_config_as_xs_s_and_m_share_every_shape(tmp_path, capsys):
    src = pytorchvideo_file(build_x3d('x3d_s'), tmp_path / 'X3D_S.pyth', X3D_S_CFG)
    assert convert_checkpoint.main([src, str(tmp_path / 'o.pth.tar'), '--from', 'pytorchvideo', '--arch', 'x3d_m']) == 1
    err = capsys.readouterr().err
    assert src in err and '13 frames at 160 px' in err and 'the file holds x3d_s; pass --arch x3d_s' in err
    assert not (tmp_path / 'o.pth.tar').exists()
    assert convert_checkpoint.main([src, str(tmp_path / 'o.pth.tar'), '--from', 'pytorchvideo', '--arch', 'x3d_s']) == 0
    bare = pytorchvideo_file(build_x3d('x3d_s'), tmp_path / 'bare.pyth')
    assert convert_checkpoint.main([bare, str(tmp_path / 'b.pth.tar'), '--from', 'pytorchvideo', '--arch', 'x3d_m']) == 0
    assert 'holds no training config' in capsys.readouterr().err  # said, as it cannot be checked
    tuned = pytorchvideo_file(build_x3d('x3d_s'), tmp_path / 'tuned.pyth', X3D_S_CFG.replace('13', '8'))
    assert convert_checkpoint.main([tuned, str(tmp_path / 't.pth.tar'), '--from', 'pytorchvideo', '--arch', 'x3d_s']) == 0
    assert 'trained 8 frames at 160 px, x3d_s 13 at 160, no published' in capsys.readouterr().err  # a fine-tuned file


def test_slowfasts_alpha_comes_from_the_flag_the_config_or_the_lateral_kernel(tmp_path, capsys):
    state = build_slowfast(alpha=8).state_dict()
    src = str(tmp_path / 'SLOWFAST_4x16_R50.pyth')
    assert convert_checkpoint.check_variant('slowfast_r50', state, {}, None, src) == 8  # kernel 5: the 4x16 file
    assert convert_checkpoint.check_variant('slowfast_r50', state, {'SLOWFAST.ALPHA': '8'}, None, src) == 8
    assert convert_checkpoint.check_variant('slowfast_r50', state, {}, 4, src) == 4  # the flag wins; loading then fails
    with pytest.raises(CheckpointError, match='SLOWFAST.ALPHA 8, --slowfast_alpha 4'):
        convert_checkpoint.check_variant('slowfast_r50', state, {'SLOWFAST.ALPHA': '8'}, 4, src)
    odd = dict(state, **{'blocks.0.multipathway_fusion.conv_fast_to_slow.weight': torch.zeros(16, 8, 3, 1, 1)})
    with pytest.raises(CheckpointError, match='temporal kernel 3.*--slowfast_alpha'):
        convert_checkpoint.check_variant('slowfast_r50', odd, {}, None, src)
    assert convert_checkpoint.check_variant('slowfast_r50', build_slowfast(alpha=4).state_dict(), {}, None, src) == 4
    with pytest.raises(CheckpointError, match='SLOWFAST.ALPHA 4, whose published lateral kernel is 7, but .* 5'):
        convert_checkpoint.check_variant('slowfast_r50', state, {'SLOWFAST.ALPHA': '4'}, None, src)
    with pytest.raises(CheckpointError, match="SLOWFAST.ALPHA '2'.*published alphas \\[4, 8\\]"):
        convert_checkpoint.check_variant('slowfast_r50', state, {'SLOWFAST.ALPHA': '2'}, None, src)


@pytest.mark.parametrize('arch,alpha,frames', [('x3d_xs', None, 4), ('slowfast_r50', 8, 16)])
def test_a_converted_checkpoint_gives_the_saved_networks_logits_under_tsn(arch, alpha, frames, tmp_path):
    torch.manual_seed(0)
    net = (build_x3d(arch) if alpha is None else build_slowfast(alpha=alpha)).eval()
    src, dst = pytorchvideo_file(net, tmp_path / 'zoo.pyth'), str(tmp_path / 'ours.pth.tar')
    flags = [] if alpha is None else ['--slowfast_alpha', str(alpha)]
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', arch, *flags]) == 0
    ckpt = load_checkpoint(dst)
    assert ckpt['args']['arch'] == arch and ckpt['args'].get('slowfast_alpha') == alpha
    assert set(ckpt['state_dict']) >= {'new_fc.weight', 'new_fc.bias'}
    model = TSN(400, frames, 'RGB', base_model=arch, pretrain='scratch',
                backbone_options={} if alpha is None else {'alpha': alpha}).eval()
    load_model_weights(model, ckpt['state_dict'], dst)
    clip = torch.randn(2, 3, frames, 64, 64)
    with torch.no_grad():
        ours = model(clip.transpose(1, 2).reshape(2, frames * 3, 64, 64))  # (N, T*C, H, W), TSN's input
        torch.testing.assert_close(ours, net(clip), rtol=1e-5, atol=1e-5)


def test_tune_from_keeps_the_backbone_and_replaces_the_kinetics_classifier(tmp_path):
    torch.manual_seed(0)
    net = build_x3d('x3d_s')
    src, dst = pytorchvideo_file(net, tmp_path / 'X3D_S.pyth'), str(tmp_path / 'x3d_s.pth.tar')
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', 'x3d_s']) == 0
    model = TSN(4, 8, 'RGB', base_model='x3d_s', pretrain='scratch')
    load_model_weights(model, load_checkpoint(dst)['state_dict'], dst, drop_classifier_if_mismatch=True)  # --tune_from
    assert torch.equal(model.base_model.blocks[4].res_blocks[0].branch2.conv_b.weight,
                       net.blocks[4].res_blocks[0].branch2.conv_b.weight)
    assert model.new_fc.weight.shape == (4, 2048)


def test_a_file_of_another_network_is_refused_naming_the_keys(tmp_path, capsys):
    src = pytorchvideo_file(build_slowfast(alpha=8), tmp_path / 'SLOWFAST_4x16_R50.pyth')
    # the 4x16 model's fusion kernel is 5; alpha 4 (8x8) expects 7
    assert convert_checkpoint.main([src, str(tmp_path / 'o.pth.tar'), '--from', 'pytorchvideo',
                                    '--arch', 'slowfast_r50', '--slowfast_alpha', '4']) == 1
    err = capsys.readouterr().err
    assert 'shape mismatch' in err and 'conv_fast_to_slow' in err and src in err
    assert convert_checkpoint.main([src, str(tmp_path / 'o.pth.tar'), '--from', 'pytorchvideo',
                                    '--arch', 'x3d_xs']) == 1
    assert 'no classifier blocks.5.proj.weight' in capsys.readouterr().err


def test_a_file_without_model_state_is_refused(tmp_path):
    path = tmp_path / 'plain.pth'
    torch.save({'state_dict': build_x3d('x3d_xs').state_dict()}, path)
    with pytest.raises(CheckpointError, match="expected a dict whose 'model_state'"):
        convert_checkpoint.read_pytorchvideo(str(path))


def test_tune_from_a_converted_4x16_takes_its_alpha_and_refuses_another(tmp_path):
    from builder import build_model, load_tune_from, use_tune_from_alpha
    from opts import parse_args
    torch.manual_seed(0)
    src, dst = pytorchvideo_file(build_slowfast(alpha=8), tmp_path / 'SLOWFAST_4x16_R50.pyth'), str(tmp_path / 'sf.pth')
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', 'slowfast_r50',
                                    '--slowfast_alpha', '8']) == 0
    argv = ['move4mnist', 'RGB', '--arch', 'slowfast_r50', '--pretrain', 'scratch', '--num_segments', '16',
            '--tune_from', dst]
    args = parse_args(argv)
    use_tune_from_alpha(args, argv)
    assert args.slowfast_alpha == 8  # taken from the file: without it the fusion kernels (5 vs 7) would not load
    model = build_model(args, 4)
    load_tune_from(model, load_checkpoint(dst)['state_dict'], dst)
    assert model.base_model.alpha == 8
    from builder import checkpoint_args
    evaluated = build_model(checkpoint_args(load_checkpoint(dst)['args'], dst), 4)  # tools/test_models.py's way
    assert (evaluated.base_model.alpha, evaluated.base_model.pathways.slow_frames) == (8, 'linspace')  # the zoo's
    assert model.base_model.pathways.slow_frames == 'stride'  # fine-tuning keeps this project's default
    with pytest.raises(SystemExit):  # the checks that depend on alpha run again: 16 / 4 frames is not a multiple of 8
        use_tune_from_alpha(parse_args(argv + ['--multigrid', 'long']), argv + ['--multigrid', 'long'])
    wrong = argv + ['--slowfast_alpha', '4']
    with pytest.raises(ValueError, match=r'sf\.pth: .*--slowfast_alpha 8'):
        use_tune_from_alpha(parse_args(wrong), wrong)


def test_tune_from_an_8x8_file_leaves_an_unset_alpha_and_the_run_name_alone(tmp_path):
    from builder import store_name, use_tune_from_alpha
    from opts import parse_args
    torch.manual_seed(0)
    src, dst = pytorchvideo_file(build_slowfast(alpha=4), tmp_path / 'SLOWFAST_8x8_R50.pyth'), str(tmp_path / 'sf.pth')
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', 'slowfast_r50']) == 0
    argv = ['move4mnist', 'RGB', '--arch', 'slowfast_r50', '--pretrain', 'scratch', '--num_segments', '16',
            '--tune_from', dst]
    args = parse_args(argv)
    before = store_name(args)
    use_tune_from_alpha(args, argv)
    assert args.slowfast_alpha is None and store_name(args) == before


def test_a_converted_x3d_is_evaluated_at_its_own_training_crop(tmp_path):
    """The file stores the arch, not a crop: evaluation (tools/test_models.py's checkpoint_args) takes the
    stored arch's training crop, not the one the command line's default arch would give."""
    from builder import checkpoint_args
    torch.manual_seed(0)
    src, dst = pytorchvideo_file(build_x3d('x3d_s'), tmp_path / 'X3D_S.pyth'), str(tmp_path / 'x3d_s.pth.tar')
    assert convert_checkpoint.main([src, dst, '--from', 'pytorchvideo', '--arch', 'x3d_s']) == 0
    args = checkpoint_args(load_checkpoint(dst)['args'], dst)
    assert (args.arch, args.img_size, args.scale_size) == ('x3d_s', 160, 182)
    assert checkpoint_args(load_checkpoint(dst)['args'], dst, extra=['--img_size', '182']).img_size == 182

