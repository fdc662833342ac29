"""Tests of ops/video_list.py: list lines -> VideoRecords, errors naming file and line, warnings."""
import os
import warnings

import pytest

from ops.video_list import parse_list
from test_dataset import write_list


def test_parse_list_reads_paths_counts_labels_and_skips_comments(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['# header', '', 'a 10 2', 'sub/b  7 1 3', '/abs/c 5 0'])
    recs = parse_list(lst, 'root', num_class=4)
    assert [r.path for r in recs] == [os.path.join('root', 'a'), os.path.join('root', 'sub/b'), '/abs/c']
    assert [r.num_frames for r in recs] == [10, 7, 5]
    assert [r.labels for r in recs] == [[2], [1, 3], [0]] and recs[1].label == 1
    assert [r.line for r in recs] == [3, 4, 5] and recs[0].where == f'{lst}:3'


@pytest.mark.parametrize('line, words', [
    ('a 10', 'expected'), ('a', 'expected'),
    ('a abc 1', 'num_frames'), ('a 0 1', 'num_frames'), ('a -3 1', 'num_frames'), ('a 2.5 1', 'num_frames'),
    ('a 10 x', 'label'), ('a 10 4', 'outside [0, 4)'), ('a 10 -1', 'outside'), ('a 10 1 9', 'outside'),
])
def test_parse_list_errors_name_file_line_and_expectation(tmp_path, line, words):
    lst = write_list(tmp_path / 'l.txt', ['ok 3 0', line])
    with pytest.raises(ValueError) as err:
        parse_list(lst, str(tmp_path), num_class=4)
    assert f'{lst}:2' in str(err.value) and words in str(err.value)


def test_parse_list_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        parse_list(str(tmp_path / 'nope.txt'), str(tmp_path), None)
    lst = write_list(tmp_path / 'empty.txt', ['# only a comment', ''])
    with pytest.raises(ValueError, match='no videos'):
        parse_list(lst, str(tmp_path), None)


def test_parse_list_video_files_may_omit_num_frames(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['v.mp4 2', 'w.mp4 30 1'])
    recs = parse_list(lst, 'r', 3, video_source='video')
    assert (recs[0].num_frames, recs[0].label, recs[1].num_frames) == (None, 2, 30)
    with pytest.raises(ValueError, match='l.txt:1'):
        parse_list(lst, 'r', 3)  # frame folders need the count


def test_list_with_a_byte_order_mark_reads_its_first_path(tmp_path):
    lst = tmp_path / 'bom.txt'
    lst.write_bytes('\ufeffa 3 0\nb 3 1\n'.encode('utf-8'))
    assert [r.path for r in parse_list(str(lst), 'root', 2)] == [os.path.join('root', 'a'), os.path.join('root', 'b')]


@pytest.mark.parametrize('line', ['my video 32 0', 'my long video 32 0 1', 'my video 3'])
def test_a_path_with_spaces_is_named_as_such(tmp_path, line):
    lst = write_list(tmp_path / 'l.txt', ['ok 3 0', line])
    with pytest.raises(ValueError) as err:
        parse_list(lst, str(tmp_path), num_class=4)
    assert f'{lst}:2' in str(err.value) and 'paths cannot contain spaces' in str(err.value), err.value


def test_repeated_lines_warn_once_naming_the_first_and_the_count(tmp_path):
    lst = write_list(tmp_path / 'l.txt', ['a 3 0', 'b 3 1', 'a 3 0', 'c 3 0', 'b 3 1', 'a 3 0'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert len(parse_list(lst, str(tmp_path), 2)) == 6  # kept, as listed
    assert len(caught) == 1, [str(c.message) for c in caught]
    text = str(caught[0].message)
    assert f'{lst}:3' in text and 'first at line 1' in text and '3 repeated' in text, text


def test_a_list_that_is_not_utf8_or_a_folder_is_named(tmp_path):
    lst = tmp_path / 'latin1.txt'
    lst.write_bytes('a 3 0\r\nvid\xe9o 3 1\r\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=f'{lst}:2: not UTF-8'):
        parse_list(str(lst), 'root', 2)
    with pytest.raises(ValueError, match='is a folder, not a list file'):
        parse_list(str(tmp_path), 'root', 2)
    lst.write_bytes('a 3 0\r\nb 3 1\r\n'.encode('latin-1'))  # CRLF lines are fine
    assert [r.line for r in parse_list(str(lst), 'root', 2)] == [1, 2]
