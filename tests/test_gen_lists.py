"""tools/gen_lists.py: each data set's official annotation layout -> `path num_frames label` lists."""
import json
import os
import subprocess
import sys

import pytest

from test_video_io import make_video
from tools import gen_lists

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frames(folder, n, template='img_{:05d}.jpg', start=1):
    """A frame folder of n dummy files (gen_lists only counts names)."""
    os.makedirs(folder, exist_ok=True)
    for i in range(start, start + n):
        with open(os.path.join(folder, template.format(i)), 'wb') as f:
            f.write(b'\xff\xd8\xff\xd9')


def write(path, text, newline='\n'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(text.replace('\n', newline))


def read(path):
    with open(path) as f:
        return f.read().splitlines()


@pytest.fixture
def ucf(tmp_path):
    ann, root = tmp_path / 'ucfTrainTestlist', tmp_path / 'ucf101'
    write(ann / 'classInd.txt', '1 ApplyEyeMakeup\n2 Archery\n3 YoYo\n', newline='\r\n')  # official CRLF
    write(ann / 'trainlist01.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n'
                                   'Archery/v_Archery_g08_c01.avi 2\n'
                                   'YoYo/v_YoYo_g08_c01.avi 3\nYoYo/v_YoYo_g09_c01.avi 3\n', newline='\r\n')
    write(ann / 'testlist01.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n'
                                  'YoYo/v_YoYo_g01_c01.avi\n', newline='\r\n')
    write(ann / 'trainlist02.txt', 'Archery/v_Archery_g01_c01.avi 2\n')
    write(ann / 'testlist02.txt', 'YoYo/v_YoYo_g08_c01.avi\n')
    frames(root / 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01', 5)
    frames(root / 'Archery/v_Archery_g08_c01', 7)
    frames(root / 'YoYo/v_YoYo_g08_c01', 3)
    (root / 'YoYo/v_YoYo_g08_c01/flow_x_00001.jpg').write_bytes(b'')  # other templates: not counted
    (root / 'YoYo/v_YoYo_g08_c01/img_000004.jpg').write_bytes(b'')
    # YoYo/v_YoYo_g09_c01 missing
    frames(root / 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01', 4)
    (root / 'YoYo/v_YoYo_g01_c01').mkdir()  # empty
    frames(root / 'Archery/v_Archery_g01_c01', 2)
    return ann, root


def test_ucf101_lists_labels_counts_and_missing(ucf, capsys):
    ann, root = ucf
    assert gen_lists.main(['ucf101', '--ann_dir', str(ann), '--frame_root', str(root)]) == 0
    assert read(root / 'classInd.txt') == ['1 ApplyEyeMakeup', '2 Archery', '3 YoYo']
    assert read(root / 'ucf101_rgb_train_split_1.txt') == [
        'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01 5 0', 'Archery/v_Archery_g08_c01 7 1', 'YoYo/v_YoYo_g08_c01 3 2']
    assert read(root / 'ucf101_rgb_val_split_1.txt') == ['ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01 4 0']
    out = capsys.readouterr().out
    assert '3 videos, 1 skipped' in out and 'missing 1' in out and 'empty 1' in out
    assert read(root / 'missing_ucf101_rgb_train_split_1.txt')[0].startswith('YoYo/v_YoYo_g09_c01 missing')
    assert read(root / 'missing_ucf101_rgb_val_split_1.txt')[0].startswith('YoYo/v_YoYo_g01_c01 empty')
    assert gen_lists.main(['ucf101', '--ann_dir', str(ann), '--frame_root', str(root), '--strict']) == 1


def test_ucf101_other_split_flat_frames_and_out_dir(ucf, tmp_path):
    ann, _ = ucf
    flat = tmp_path / 'flat'
    frames(flat / 'v_Archery_g01_c01', 6)
    frames(flat / 'v_YoYo_g08_c01', 8)
    out = tmp_path / 'lists'
    assert gen_lists.main(['ucf101', '--ann_dir', str(ann), '--frame_root', str(flat), '--split', '2',
                           '--out_dir', str(out)]) == 0
    assert read(out / 'ucf101_rgb_train_split_2.txt') == ['v_Archery_g01_c01 6 1']
    assert read(out / 'ucf101_rgb_val_split_2.txt') == ['v_YoYo_g08_c01 8 2']
    assert not os.path.exists(out / 'missing_ucf101_rgb_train_split_2.txt')


def test_ucf101_bad_annotation_names_file_and_line(ucf, capsys):
    ann, root = ucf
    write(ann / 'trainlist01.txt', 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n'
                                   'Archery/v_Archery_g08_c01.avi 3\n')
    assert gen_lists.main(['ucf101', '--ann_dir', str(ann), '--frame_root', str(root)]) == 2
    assert 'trainlist01.txt:2' in capsys.readouterr().err


def test_hmdb51_split_files(tmp_path):
    ann, root = tmp_path / 'testTrainMulti_7030_splits', tmp_path / 'hmdb51'
    write(ann / 'wave_test_split1.txt', 'wave_a.avi 1 \nwave_b.avi 2 \nwave_c.avi 0 \n')
    write(ann / 'brush_hair_test_split1.txt', 'April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nbh_b.avi 2 \n')
    write(ann / 'climb_stairs_test_split1.txt', 'cs_a.avi 2 \n')
    write(ann / 'wave_test_split2.txt', 'wave_a.avi 2 \n')  # other split: ignored
    for rel, n in [('wave/wave_a', 3), ('wave/wave_b', 4), ('wave/wave_c', 5), ('brush_hair/bh_b', 6),
                   ('brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0', 7), ('climb_stairs/cs_a', 2)]:
        frames(root / rel, n)
    assert gen_lists.main(['hmdb51', '--ann_dir', str(ann), '--frame_root', str(root), '--split', '1']) == 0
    assert read(root / 'classInd.txt') == ['1 brush_hair', '2 climb_stairs', '3 wave']
    assert read(root / 'hmdb51_rgb_train_split_1.txt') == [
        'brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0 7 0', 'wave/wave_a 3 2']
    assert read(root / 'hmdb51_rgb_val_split_1.txt') == [
        'brush_hair/bh_b 6 0', 'climb_stairs/cs_a 2 1', 'wave/wave_b 4 2']


def test_something_v1_sorted_categories(tmp_path):
    ann, root = tmp_path / 'ann', tmp_path / '20bn-something-something-v1'
    write(ann / 'something-something-v1-labels.csv', 'Tearing something into two pieces\nHolding something\n'
                                                     'Approaching something with your camera\n')
    write(ann / 'something-something-v1-train.csv',
          '100218;Holding something\n42;Tearing something into two pieces\n')
    write(ann / 'something-something-v1-validation.csv',
          '7;Approaching something with your camera\n8;Holding something\n')
    frames(root / '100218', 30, '{:05d}.jpg')
    frames(root / '42', 12, '{:05d}.jpg')
    frames(root / '7', 9, '{:05d}.jpg')
    frames(root / '8', 4, 'img_{:05d}.jpg')  # wrong template: empty for '{:05d}.jpg'
    assert gen_lists.main(['something', '--ann_dir', str(ann), '--frame_root', str(root)]) == 0
    assert read(root / 'category.txt') == ['Approaching something with your camera', 'Holding something',
                                           'Tearing something into two pieces']
    assert read(root / 'train_videofolder.txt') == ['100218 30 1', '42 12 2']
    assert read(root / 'val_videofolder.txt') == ['7 9 0']
    assert read(root / 'missing_val_videofolder.txt')[0].startswith('8 empty')


def test_something_v2_templates_to_label_ids(tmp_path):
    ann, root = tmp_path / 'ann', tmp_path / 'frames'
    labels = {'Holding something': '1', 'Approaching something with your camera': '0',
              'Putting something on something': '2'}
    write(ann / 'something-something-v2-labels.json', json.dumps(labels))
    write(ann / 'something-something-v2-train.json', json.dumps([
        {'id': '78687', 'label': 'putting a cup on a table', 'template': 'Putting [something] on [something]',
         'placeholders': ['a cup', 'a table']},
        {'id': '42326', 'label': 'holding potato', 'template': 'Holding [something]',
         'placeholders': ['potato']}]))
    write(ann / 'something-something-v2-validation.json', json.dumps([
        {'id': '74225', 'label': 'approaching', 'template': 'Approaching [something] with your camera',
         'placeholders': ['x']}]))
    frames(root / '78687', 40, '{:06d}.jpg')
    frames(root / '42326', 25, '{:06d}.jpg')
    frames(root / '74225', 33, '{:06d}.jpg')
    assert gen_lists.main(['somethingv2', '--ann_dir', str(ann), '--frame_root', str(root)]) == 0
    assert read(root / 'category.txt') == ['Approaching something with your camera', 'Holding something',
                                           'Putting something on something']
    assert read(root / 'train_videofolder.txt') == ['78687 40 2', '42326 25 1']
    assert read(root / 'val_videofolder.txt') == ['74225 33 0']


def test_kinetics_csv_folder_names_and_spaces(tmp_path, capsys):
    ann, root = tmp_path / 'ann', tmp_path / 'kinetics'
    write(ann / 'kinetics_train.csv', 'label,youtube_id,time_start,time_end,split\n'
                                      'abseiling,--07WQ2iBlw,1,11,train\n'
                                      '"passing American football (in game)",-5HNbeUkVas,14,24,train\n'
                                      'air drumming,0b7yCKbnEMA,30,40,train\n'
                                      'abseiling,missing0000,0,10,train\n')
    write(ann / 'validate.csv', 'label,youtube_id,time_start,time_end,split\n'
                                'air drumming,zzzzzzzzzzz,100,110,val\n')
    frames(root / 'abseiling/--07WQ2iBlw_000001_000011', 10)
    frames(root / 'passing_American_football_in_game/-5HNbeUkVas_000014_000024', 11)  # TSM's spelling
    frames(root / 'air drumming/0b7yCKbnEMA_000030_000040', 12)  # official downloader: space
    frames(root / 'val/air_drumming/zzzzzzzzzzz_000100_000110', 13)
    assert gen_lists.main(['kinetics', '--ann_dir', str(ann), '--frame_root', str(root)]) == 0
    assert read(root / 'category.txt') == ['abseiling', 'air drumming', 'passing American football (in game)']
    assert read(root / 'train_videofolder.txt') == [
        'abseiling/--07WQ2iBlw_000001_000011 10 0',
        'passing_American_football_in_game/-5HNbeUkVas_000014_000024 11 2']
    assert read(root / 'val_videofolder.txt') == ['val/air_drumming/zzzzzzzzzzz_000100_000110 13 1']
    missing = read(root / 'missing_train_videofolder.txt')
    assert missing[0].startswith('air drumming/0b7yCKbnEMA_000030_000040 space')
    assert missing[1].startswith('abseiling/missing0000_000000_000010 missing')
    assert '2 videos, 2 skipped' in capsys.readouterr().out


def test_breakfast_persons_split_and_layouts(tmp_path):
    root = tmp_path / 'breakfast'
    frames(root / 'P03/cam01/P03_cereals', 20)
    frames(root / 'P15_cam02_P15_juice', 8)                # flat name
    frames(root / 'P16/webcam01/P16_tea', 9)
    frames(root / 'P54/stereo/P54_scrambledegg_ch1', 11)  # stereo channel
    frames(root / 'P28/cam01/P28_salat', 6)
    (root / 'P20/cam01/P20_salat').mkdir(parents=True)     # empty
    frames(root / 'P03/cam01/notes', 2)                    # not a Breakfast video name
    assert gen_lists.main(['breakfast', '--frame_root', str(root)]) == 0
    assert read(root / 'classInd.txt') == [f'{i + 1} {n}' for i, n in enumerate(
        ['cereals', 'coffee', 'friedegg', 'juice', 'milk', 'pancake', 'salat', 'sandwich', 'scrambledegg', 'tea'])]
    assert sorted(read(root / 'breakfast_rgb_val_split_1.txt')) == [
        'P03/cam01/P03_cereals 20 0', 'P15_cam02_P15_juice 8 3']
    assert sorted(read(root / 'breakfast_rgb_train_split_1.txt')) == [
        'P16/webcam01/P16_tea 9 9', 'P28/cam01/P28_salat 6 6', 'P54/stereo/P54_scrambledegg_ch1 11 8']
    assert read(root / 'missing_breakfast_rgb_train_split_1.txt')[0].startswith('P20/cam01/P20_salat empty')
    assert gen_lists.main(['breakfast', '--frame_root', str(root), '--split', '2']) == 0  # tests P16-P28
    assert sorted(read(root / 'breakfast_rgb_val_split_2.txt')) == [
        'P16/webcam01/P16_tea 9 9', 'P28/cam01/P28_salat 6 6']


def test_custom_frame_tree_template_gap_and_val_fraction(tmp_path):
    root = tmp_path / 'custom'
    for c, n in (('jump', 4), ('run', 2)):
        for k in range(n):
            frames(root / c / f'{c}{k}', 3 + k, '{}.jpg', start=0)
    frames(root / 'run' / 'gappy', 5, '{}.jpg', start=0)
    os.remove(root / 'run' / 'gappy' / '2.jpg')
    frames(root / 'run' / 'run9.tmp-123', 2, '{}.jpg', start=0)  # vid2img's unfinished folder
    args = ['custom', '--frame_root', str(root), '--template', '{}.jpg', '--start_index', '0']
    assert gen_lists.main(args) == 0
    assert read(root / 'classInd.txt') == ['1 jump', '2 run']
    assert read(root / 'custom_list.txt') == [
        'jump/jump0 3 0', 'jump/jump1 4 0', 'jump/jump2 5 0', 'jump/jump3 6 0', 'run/run0 3 1', 'run/run1 4 1']
    assert read(root / 'missing_custom_list.txt')[0].startswith('run/gappy gap: no 2.jpg')
    assert gen_lists.main(args + ['--val_fraction', '0.5']) == 0
    train, val = read(root / 'custom_train.txt'), read(root / 'custom_val.txt')
    assert len(train) == 3 and len(val) == 3 and sorted(train + val) == read(root / 'custom_list.txt')
    assert {line.split()[2] for line in val} == {'0', '1'}  # both classes in val


def test_custom_video_mode_counts_by_decoding(tmp_path, capsys):
    root = tmp_path / 'videos'
    make_video(root / 'left' / 'a.mp4', n=12)
    make_video(root / 'right' / 'b.avi', n=5)
    make_video(root / 'right' / 'c.mkv', n=9, codec='libx264')
    (root / 'right' / 'broken.mp4').write_bytes(b'not a video at all' * 50)
    (root / 'right' / 'readme.txt').write_text('ignored')
    assert gen_lists.main(['custom', '--video', '--root', str(root), '-j', '2']) == 0
    assert read(root / 'custom_list.txt') == ['left/a.mp4 12 0', 'right/b.avi 5 1', 'right/c.mkv 9 1']
    assert 'undecodable' in read(root / 'missing_custom_list.txt')[0]
    assert '1 skipped' in capsys.readouterr().out


def test_no_usable_folder_is_an_error_and_cli_runs(ucf, tmp_path):
    ann, _ = ucf
    script = os.path.join(ROOT, 'tools', 'gen_lists.py')
    proc = subprocess.run([sys.executable, script, 'ucf101', '--ann_dir', str(ann),
                           '--frame_root', str(tmp_path), '--out_dir', str(tmp_path / 'out')],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and 'no usable video' in proc.stderr
    assert 'ucf101_rgb_train_split_1.txt: 0 videos, 4 skipped' in proc.stdout
