"""Tests of tools/annotations.py: each reader returns class names and the entries of each list role."""
import argparse

import pytest

from tools.annotations import READERS, AnnotationError


def test_readers_return_roles_not_file_names(tmp_path):
    ann = tmp_path / 'splits'
    ann.mkdir()
    (ann / 'jump_test_split1.txt').write_text('a.avi 1\nb.avi 2\nc.avi 0\n')
    (ann / 'run_test_split1.txt').write_text('d.avi 2\n')
    names, lists = READERS['hmdb51'](argparse.Namespace(ann_dir=str(ann), split=1))
    assert names == ['jump', 'run'] and set(lists) == {'train', 'val'}
    assert lists['train'] == [(['jump/a', 'a'], 0)] and lists['val'] == [(['jump/b', 'b'], 0), (['run/d', 'd'], 1)]
    for cls in ('x', 'y'):
        (tmp_path / 'root' / cls / f'{cls}_0').mkdir(parents=True)
    args = argparse.Namespace(frame_root=str(tmp_path / 'root'), video=False, seed=0, val_fraction=0.0)
    assert READERS['custom'](args) == (['x', 'y'], {'all': [(['x/x_0'], 0), (['y/y_0'], 1)]})


def test_a_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / 'jump_test_split1.txt').write_text('a.avi 1\nb.avi 7\n')
    with pytest.raises(AnnotationError, match=r'jump_test_split1.txt:2: expected'):
        READERS['hmdb51'](argparse.Namespace(ann_dir=str(tmp_path), split=1))
