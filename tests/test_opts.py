"""opts.py: every flag value checked when parsed (exit status 2 naming the flag), contradictions refused, and
the stored model settings that evaluation takes from a checkpoint."""
from typing import List

import pytest

import opts

BASE = ['move4mnist', 'RGB']


def exit_message(argv: List[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        opts.check_training(opts.parse_args(BASE + argv))
    assert exit_.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize('argv,flag', [
    (['--eval-freq', '0'], '--eval-freq'), (['-p', '0'], '--print-freq'), (['--shift_div', '0'], '--shift_div'),
    (['--img_size', '0'], '--img_size'), (['--scale_size', '-4'], '--scale_size'), (['-b', '0'], '--batch-size'),
    (['--epochs', '-1'], '--epochs'), (['--num_segments', '0'], '--num_segments'), (['--lr', '-0.1'], '--lr'),
    (['--lr', 'nan'], '--lr'), (['--dropout', '1'], '--dropout'), (['--dropout', '-0.5'], '--dropout'),
    (['-j', '-1'], '--workers'), (['--save_freq', '-1'], '--save_freq'), (['--chunk_frames', '-2'], '--chunk_frames'),
    (['--momentum', '-1'], '--momentum'), (['--wd', 'inf'], '--weight-decay'), (['--lr_steps', '-3'], '--lr_steps'),
    (['--seed', '-1'], '--seed'), (['--start_index', '-1'], '--start_index'), (['--img_size', 'big'], '--img_size'),
    (['--cluster', 'uniform', '--frames', '0'], '--frames'),
])
def test_bad_flag_values_exit_2_naming_the_flag(argv, flag, capsys):
    last = exit_message(argv, capsys)
    assert flag in last and repr(argv[-1]) in last, last


@pytest.mark.parametrize('argv,names', [
    (['--cluster', 'uniform', '--frames', '8', '--num_segments', '16'], ['--num_segments 16', '--frames 8']),
    (['--cluster', 'cumulative', '--num_segments', '40'], ['--num_segments 40', '--frames 32']),  # F's default
    (['--chunk_frames', '4'], ['--chunk_frames', '--cluster']),
    (['--freeze_early_bn'], ['--freeze_early_bn', '--cluster']),
    (['--cluster', 'slope', '--chunk_frames', '4'], ['--chunk_frames 4', '--freeze_early_bn']),
    (['--shift', '--shift_div', '65'], ['--shift_div 65']),
    (['--sample_rate', '2'], ['--sample_rate', '--arch resnet50']),  # a 2D backbone takes TSN segments
    (['--arch', 'r3d_18', '--cluster', 'uniform', '--sample_rate', '2'], ['--sample_rate', '--cluster uniform']),
    (['--arch', 'r3d_18', '--dense_sample'], ['--dense_sample', '--sample_rate']),
    (['--pretrain', 'kinetics400'], ['--pretrain kinetics400', '--arch resnet50']),
    (['--arch', 'i3d_resnet50', '--pretrain', 'kinetics400'], ['--pretrain kinetics400', '--arch i3d_resnet50']),
    (['--arch', 'x3d_xs', '--slowfast_alpha', '8'], ['--slowfast_alpha', '--arch slowfast_r50', 'x3d_xs']),
])
def test_contradictions_exit_2_naming_the_flags(argv, names, capsys):
    last = exit_message(argv, capsys)
    assert all(n in last for n in names), last


def test_slowfast_alpha_is_4_or_8(capsys):
    last = exit_message(['--arch', 'slowfast_r50', '--slowfast_alpha', '2'], capsys)
    assert '--slowfast_alpha' in last and 'invalid choice: 2' in last, last
    assert opts.parse_args(BASE + ['--arch', 'slowfast_r50', '--slowfast_alpha', '8']).slowfast_alpha == 8


def test_good_values_pass():
    args = opts.parse_args(BASE + ['--cluster', 'slope', '--frames', '8', '--num_segments', '8', '--chunk_frames',
                                   '4', '--freeze_early_bn', '--lr', '0', '--dropout', '0', '-j', '0'])
    opts.check_training(args)
    assert args.frames == 8 and args.lr == 0.0 and args.workers == 0
    opts.check_training(opts.parse_args(BASE + ['--cluster', 'slope', '--chunk_frames', '4', '-e']))  # evaluation


def test_sample_rate_defaults_to_1_for_clip_backbones_only():
    assert opts.parse_args(BASE + ['--arch', 'r3d_18']).sample_rate == 1
    assert opts.parse_args(BASE + ['--arch', 'r3d_18', '--sample_rate', '4']).sample_rate == 4
    assert opts.parse_args(BASE + ['--arch', 'r3d_18', '--cluster', 'uniform']).sample_rate is None  # every frame
    assert opts.parse_args(BASE + ['--arch', 'resnet18']).sample_rate is None
    assert opts.parse_args(BASE + ['--arch', 's3d', '--pretrain', 'kinetics400']).pretrain == 'kinetics400'
    assert opts.parse_args(BASE + ['--new_length', '3']).new_length == 3


def test_explicit_flags_are_only_those_given():
    given = opts.explicit_flags(BASE + ['--num_segments', '8', '--shift', '-e'])
    assert given == {'dataset': 'move4mnist', 'modality': 'RGB', 'num_segments': 8, 'shift': True,
                     'evaluate': True}  # --num_segments 8 is the default, but given


def test_stored_settings_refuse_a_contradiction_naming_flag_and_values():
    saved = {'cluster': 'cumulative', 'num_segments': 4, 'frames': 16, 'arch': 'resnet18', 'lr': 0.1}
    assert opts.stored_settings(saved, {'num_segments': 4}, 'ck.pth') == {
        'cluster': 'cumulative', 'num_segments': 4, 'frames': 16, 'arch': 'resnet18'}  # lr: not a model setting
    with pytest.raises(ValueError) as err:
        opts.stored_settings(saved, {'cluster': 'uniform', 'frames': 16}, 'ck.pth')
    text = str(err.value)
    assert 'ck.pth' in text and '--cluster' in text and "'cumulative'" in text and "'uniform'" in text, text
    assert '--frames' not in text and '--override_model_args' in text
    assert opts.stored_settings(saved, {'cluster': 'uniform'}, 'ck.pth', override=True)['cluster'] == 'uniform'


def test_flag_name_is_the_long_option():
    assert opts.flag_name('batch_size') == '--batch-size' and opts.flag_name('num_segments') == '--num_segments'


def test_ignored_tsm_flags_say_so_and_warn_only_when_given_another_value(capsys):
    """TSM's flags that nothing reads: the help says 'ignored'; a non-default value prints a warning."""
    helps = {a.dest: a.help for a in opts.build_parser()._actions}
    assert all('ignored' in helps[dest] for dest in opts.IGNORED)
    opts.parse_args(BASE + ['--loss_type', 'nll', '--k', '3'])  # the defaults: nothing to say
    assert 'ignored' not in capsys.readouterr().err
    opts.parse_args(BASE + ['--img_feature_dim', '512', '--gpus', '0', '1', '--snapshot_pref', 'x'])
    err = capsys.readouterr().err
    assert '--img_feature_dim 512 is ignored' in err and '--gpus [0, 1] is ignored' in err
    assert "--snapshot_pref 'x' is ignored" in err and '--flow_prefix' not in err


def test_every_flag_is_read_somewhere_or_ignored():
    """Each flag's dest appears as ``.dest`` or ``'dest'`` in the code outside opts.py and the tests, unless
    it is one of TSM's ignored flags."""
    import re
    from pathlib import Path
    root = Path(opts.__file__).resolve().parent
    code = ''.join(p.read_text() for p in root.rglob('*.py')
                   if 'tests' not in p.relative_to(root).parts and p.name != 'opts.py')
    unread = [a.dest for a in opts.build_parser()._actions if a.dest != 'help' and a.dest not in opts.IGNORED
              and not re.search(rf"\.{a.dest}\b|'{a.dest}'", code)]
    assert unread == []


def test_zero_init_residual_needs_npb_in_training(capsys):
    last = exit_message(['--pretrain', 'scratch', '--zero_init_residual'], capsys)
    assert '--zero_init_residual without --npb' in last and 'Add --npb' in last, last
    opts.check_training(opts.parse_args(BASE + ['--pretrain', 'scratch', '--zero_init_residual', '--npb']))
    opts.check_training(opts.parse_args(BASE + ['--zero_init_residual', '-e']))  # evaluation trains nothing


@pytest.mark.parametrize('arch,size', [('resnet50', 224), ('r3d_18', 112), ('c3d', 112), ('x3d_xs', 160),
                                       ('x3d_l', 312), ('slowfast_r50', 224)])
def test_the_crop_defaults_to_the_backbones_training_crop(arch, size):
    args = opts.parse_args(BASE + ['--arch', arch, '--pretrain', 'scratch'])
    assert args.img_size == size and args.scale_size == size * 256 // 224
    assert opts.parse_args(BASE + ['--arch', arch, '--pretrain', 'scratch', '--img_size', '64']).img_size == 64


def test_slowfast_slow_frames_is_checked(capsys):
    last = exit_message(['--arch', 'resnet18', '--slowfast_slow_frames', 'linspace'], capsys)
    assert 'only applies with --arch slowfast_r50' in last, last
    last = exit_message(['--arch', 'slowfast_r50', '--pretrain', 'scratch', '--num_segments', '30',
                         '--slowfast_slow_frames', 'linspace'], capsys)
    assert '--num_segments 30 is not a multiple of alpha 4' in last, last
    args = opts.parse_args(BASE + ['--arch', 'slowfast_r50', '--pretrain', 'scratch', '--num_segments', '32',
                                   '--slowfast_slow_frames', 'linspace'])
    assert args.slowfast_slow_frames == 'linspace' and 'slowfast_slow_frames' in opts.MODEL_KEYS
