"""End to end from video files: PyAV videos -> tools/vid2img.py -> tools/gen_lists.py custom -> one training
epoch of main.py (frames and, skipping extraction, straight from the video files)."""
import pytest

av = pytest.importorskip('av')

import main as train_main  # noqa: E402
from tools import gen_lists, vid2img  # noqa: E402
from test_video_io import decode_with_av, make_video  # noqa: E402


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    src = tmp_path_factory.mktemp('videos')
    for cls in ('jump', 'run'):
        for k in range(3):
            make_video(src / cls / f'{cls}_{k}.mp4', n=10 + k, width=48, height=40)
    return src


def common(root, out, *extra):
    return ['custom', 'RGB', '--root_path', str(root), '--train_list', 'custom_train.txt', '--val_list',
            'custom_val.txt', '--arch', 'resnet18', '--pretrain', 'scratch', '--npb', '--shift', '--img_size', '32',
            '--scale_size', '32', '-b', '2', '-j', '0', '--epochs', '1', '--eval-freq', '1', '--device', 'cpu',
            '--root_log', str(out / 'log'), '--root_model', str(out / 'ckpt'), '--store_name', 'run', *extra]


def test_extract_list_and_train_one_epoch(videos, tmp_path):
    frames = tmp_path / 'frames'
    assert vid2img.main([str(videos), str(frames), '-j', '2']) == 0
    for cls in ('jump', 'run'):
        for k in range(3):
            decoded = len(decode_with_av(videos / cls / f'{cls}_{k}.mp4'))
            assert len(list((frames / cls / f'{cls}_{k}').glob('img_*.jpg'))) == decoded == 10 + k
    assert gen_lists.main(['custom', '--frame_root', str(frames), '--val_fraction', '0.34', '--seed', '0']) == 0
    lines = (frames / 'custom_train.txt').read_text().split('\n')
    assert all(int(line.split()[1]) >= 10 for line in lines if line)
    result = train_main.main(common(frames, tmp_path, '--num_segments', '4', '--image_tmpl', 'img_{:05d}.jpg',
                                    '--start_index', '1', '--cluster', 'cumulative', '--frames', 'all'))
    assert result['count'] >= 2 and (tmp_path / 'ckpt' / 'run' / 'ckpt.best.pth.tar').is_file()


def test_train_straight_from_video_files(videos, tmp_path):
    assert gen_lists.main(['custom', '--frame_root', str(videos), '--video', '--val_fraction', '0.34',
                           '--seed', '0']) == 0
    result = train_main.main(common(videos, tmp_path, '--num_segments', '4', '--video_source', 'video'))
    assert result['count'] >= 2 and (tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar').is_file()
