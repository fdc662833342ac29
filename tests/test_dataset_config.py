"""Tests of ops/dataset_config.py: defaults as TSM, relative roots, real overrides, aliases, class files."""
import os

import pytest

from ops.dataset import VideoDataset
from ops.dataset_config import (CUSTOM_ONE_LIST, SPECS, class_file_format, list_files, read_class_file, return_dataset,
                                write_class_file)


@pytest.mark.parametrize('name, tmpl, start, n', [
    ('ucf101', 'img_{:05d}.jpg', 1, 101), ('hmdb51', 'img_{:05d}.jpg', 1, 51), ('something', '{:05d}.jpg', 1, 174),
    ('somethingv2', '{:06d}.jpg', 1, 174), ('kinetics', 'img_{:05d}.jpg', 1, 400),
    ('breakfast', 'img_{:05d}.jpg', 1, 10), ('move4mnist', '{}.jpg', 0, 4),
])
def test_defaults_follow_tsm_with_relative_root(name, tmpl, start, n, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/<name>/ class file around
    cfg = return_dataset(name, 'RGB')
    assert (cfg.name, cfg.image_tmpl, cfg.start_index, cfg.num_class) == (name, tmpl, start, n)
    assert cfg.root_path == os.path.join('data', name) and not os.path.isabs(cfg.root_path)
    assert cfg.train_list.startswith(cfg.root_path + os.sep) and cfg.val_list.startswith(cfg.root_path + os.sep)
    assert cfg.video_source == 'frames' and cfg.classes is None


def test_direction_sensitive_sets(tmp_path):
    sensitive = {name for name in SPECS if return_dataset(name, 'RGB', root_path=str(tmp_path), train_list='t',
                                                          val_list='v', num_class=2).direction_sensitive}
    assert sensitive == {'something', 'somethingv2', 'jester', 'move4mnist'}


def test_movingmnist_alias_reads_class_file(tmp_path):
    (tmp_path / 'classInd.txt').write_text('1 left\n2 right\n3 up\n4 down\n')
    cfg = return_dataset('movingmnist', 'RGB', root_path=str(tmp_path))
    assert cfg.name == 'move4mnist' and cfg.classes == ['left', 'right', 'up', 'down'] and cfg.num_class == 4
    assert cfg.train_list == str(tmp_path / 'train_videofolder.txt')
    assert cfg.val_list == str(tmp_path / 'val_videofolder.txt')
    assert (cfg.image_tmpl, cfg.start_index, cfg.direction_sensitive) == ('{}.jpg', 0, True)


def test_class_file_sets_the_count(tmp_path):
    (tmp_path / 'classInd.txt').write_text('2 b\n1 a\n3 c\n')
    cfg = return_dataset('ucf101', 'RGB', root_path=str(tmp_path))
    assert cfg.num_class == 3 and cfg.classes == ['a', 'b', 'c']
    (tmp_path / 'category.txt').write_text('Pushing something\n3 people waving\n')
    assert read_class_file(str(tmp_path / 'category.txt')) == ['Pushing something', '3 people waving']
    with pytest.raises(ValueError, match='classInd.txt'):
        return_dataset('ucf101', 'RGB', root_path=str(tmp_path), num_class=5)


def test_flags_really_override(tmp_path):
    cfg = return_dataset('ucf101', 'RGB', root_path='frames/ucf', train_list='splits/t.txt', val_list='/abs/v.txt',
                         image_tmpl='{:04d}.png', start_index=0, video_source='video')
    assert cfg.root_path == 'frames/ucf'
    assert cfg.train_list == os.path.join('frames/ucf', 'splits/t.txt') and cfg.val_list == '/abs/v.txt'
    assert (cfg.image_tmpl, cfg.start_index, cfg.video_source) == ('{:04d}.png', 0, 'video')
    assert return_dataset('ucf101', 'RGB', start_index=0).start_index == 0  # 0 is an override, not "unset"


def test_flow_defaults_and_unsupported():
    cfg = return_dataset('ucf101', 'Flow')
    # Flow reads the RGB lists (N frames give N - 1 pairs, ops/dataset.py)
    assert cfg.image_tmpl == 'flow_{}_{:05d}.jpg' and cfg.train_list == return_dataset('ucf101', 'RGB').train_list
    assert return_dataset('somethingv2', 'Flow').image_tmpl == 'flow_{}_{:06d}.jpg'
    m4 = return_dataset('move4mnist', 'Flow')  # tools/extract_flow.py numbers pairs from frame 0 as the frames
    assert (m4.image_tmpl, m4.start_index) == ('flow_{}_{:05d}.jpg', 0)
    with pytest.raises(ValueError, match='image_tmpl'):
        return_dataset('jester', 'Flow')
    with pytest.raises(ValueError, match='modality'):
        return_dataset('ucf101', 'Depth')
    with pytest.raises(ValueError, match='unknown data set'):
        return_dataset('ucf1O1', 'RGB')


def test_custom_takes_everything_from_flags(tmp_path):
    cfg = return_dataset('custom', 'RGB', root_path=str(tmp_path), num_class=3)  # tools/gen_lists.py names
    assert cfg.train_list == str(tmp_path / 'custom_train.txt') and cfg.val_list == str(tmp_path / 'custom_val.txt')
    (tmp_path / 'train.txt').write_text('a 4 0\nb 4 6\n')
    cfg = return_dataset('custom', 'RGB', root_path=str(tmp_path), train_list='train.txt', val_list='val.txt',
                         image_tmpl='{:03d}.jpg', start_index=0)
    assert cfg.num_class == 7 and cfg.train_list == str(tmp_path / 'train.txt')  # largest label + 1
    assert return_dataset('custom', 'RGB', root_path=str(tmp_path), train_list='train.txt', val_list='v',
                          num_class=9).num_class == 9
    (tmp_path / 'category.txt').write_text('x\ny\n')
    assert return_dataset('custom', 'RGB', root_path=str(tmp_path), train_list='train.txt',
                          val_list='v').classes == ['x', 'y']


def test_config_drives_a_dataset(tmp_path):
    from PIL import Image
    (tmp_path / 'classInd.txt').write_text('1 left\n2 right\n3 up\n4 down\n')
    os.makedirs(tmp_path / 'jpg' / 'down_0')
    for i in range(32):
        Image.new('L', (16, 16), 8 * i).save(tmp_path / 'jpg' / 'down_0' / f'{i}.jpg')
    (tmp_path / 'train_videofolder.txt').write_text('jpg/down_0 32 3\n')
    cfg = return_dataset('movingmnist', 'RGB', root_path=str(tmp_path))
    ds = VideoDataset(cfg.root_path, cfg.train_list, num_segments=16, image_tmpl=cfg.image_tmpl,
                      start_index=cfg.start_index, num_class=cfg.num_class, frames=16)
    frames, label, length = ds[0]
    assert frames.shape == (48, 16, 16) and label == 3 and length == 16


def test_list_files_name_the_official_split():
    assert list_files('ucf101', 2) == ('ucf101_rgb_train_split_2.txt', 'ucf101_rgb_val_split_2.txt')
    assert list_files('breakfast') == ('breakfast_rgb_train_split_1.txt', 'breakfast_rgb_val_split_1.txt')
    assert list_files('kinetics', 3) == ('train_videofolder.txt', 'val_videofolder.txt')  # one split
    assert CUSTOM_ONE_LIST not in list_files('custom') and (SPECS['ucf101'].splits, SPECS['jester'].splits) == (3, 1)


@pytest.mark.parametrize('fmt', ['classind', 'category'])
def test_a_written_class_file_reads_back_and_is_found(tmp_path, fmt):
    names = ['Pushing something', 'jump', '3 people waving']
    path = write_class_file(str(tmp_path / 'root'), names, fmt)
    assert os.path.basename(path) == ('classInd.txt' if fmt == 'classind' else 'category.txt')
    assert read_class_file(path) == names
    assert return_dataset('custom', 'RGB', root_path=str(tmp_path / 'root'), train_list='t').classes == names
    assert (class_file_format('ucf101'), class_file_format('somethingv2')) == ('classind', 'category')
