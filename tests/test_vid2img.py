"""tools/vid2img.py: one frame file per decoded frame, resumable, corrupt videos reported at the end."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from ops import video_io
from test_video_io import decode_with_av, make_video, nearest_frame
from tools import vid2img

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def src(tmp_path):
    d = tmp_path / 'src'
    make_video(d / 'ClassA' / 'v_a.mp4', n=12)
    make_video(d / 'ClassB' / 'v_b.avi', n=9)
    make_video(d / 'ClassB' / 'deeper' / 'v_c.mkv', n=7, width=48, height=64, codec='libx264')
    (d / 'ClassB' / 'notes.txt').write_text('not a video')
    (d / 'ClassA' / '._v_a.mp4').write_bytes(b'\0\5\26\7')  # macOS resource fork: ignored
    return d


def frames_of(folder):
    return sorted(os.listdir(folder))


def test_every_decoded_frame_written_in_order(src, tmp_path):
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src), str(dst)]) == 0
    for video in ('ClassA/v_a.mp4', 'ClassB/v_b.avi', 'ClassB/deeper/v_c.mkv'):
        rel = os.path.splitext(video)[0]
        reference = decode_with_av(src / video)  # independent count and content
        names = frames_of(dst / rel)
        assert names == [f'img_{i:05d}.jpg' for i in range(1, len(reference) + 1)]
        for i, name in enumerate(names):
            jpg = np.asarray(Image.open(dst / rel / name).convert('RGB'), dtype=np.float32)
            assert np.abs(jpg - reference[i]).mean() < 8
            assert nearest_frame(jpg, len(reference)) == i
    leftovers = [p for p in dst.rglob('*') if '.tmp-' in p.name]
    assert leftovers == [] and not (dst / 'ClassB' / 'notes').exists()


def test_read_frames_matches_extracted_jpegs(src, tmp_path):
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src), str(dst), '--ext', 'mkv']) == 0
    indices = [6, 0, 3, 3]
    for i, image in zip(indices, video_io.read_frames(str(src / 'ClassB/deeper/v_c.mkv'), indices)):
        jpg = np.asarray(Image.open(dst / 'ClassB/deeper/v_c' / f'img_{i + 1:05d}.jpg'), dtype=np.float32)
        assert np.abs(jpg - np.asarray(image, dtype=np.float32)).mean() < 8
    assert not (dst / 'ClassA').exists()  # --ext mkv: only the .mkv


def test_template_start_index_and_short_side(src, tmp_path):
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src), str(dst), '--template', '{:06d}.jpg', '--start_index', '0',
                         '--short_side', '32']) == 0
    assert frames_of(dst / 'ClassA/v_a') == [f'{i:06d}.jpg' for i in range(12)]
    assert Image.open(dst / 'ClassA/v_a/000000.jpg').size == (43, 32)       # 64x48 landscape
    assert Image.open(dst / 'ClassB/deeper/v_c/000006.jpg').size == (32, 43)  # 48x64 portrait


def test_fps_resamples(src, tmp_path):
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src / 'ClassA'), str(dst), '--fps', '12.5']) == 0  # 12 frames at 25 fps
    assert len(frames_of(dst / 'v_a')) == 6


def test_rerun_skips_finished_and_redoes_interrupted(src, tmp_path, monkeypatch):
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src), str(dst)]) == 0
    done = dst / 'ClassA/v_a/img_00001.jpg'
    os.utime(done, (1, 1))

    # An interrupted video: its folder is gone and a worker's half-written .tmp folder is left.
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    os.rename(dst / 'ClassB/v_b', dst / f'ClassB/v_b.tmp-{dead.pid}')
    os.remove(dst / f'ClassB/v_b.tmp-{dead.pid}/img_00009.jpg')

    decoded = []
    real = video_io.iter_frames
    monkeypatch.setattr(video_io, 'iter_frames', lambda path, fps=None: decoded.append(path) or real(path, fps))
    assert vid2img.main([str(src), str(dst)]) == 0
    assert [os.path.basename(p) for p in decoded] == ['v_b.avi']
    assert os.stat(done).st_mtime == 1
    assert frames_of(dst / 'ClassB/v_b') == [f'img_{i:05d}.jpg' for i in range(1, 10)]
    assert not (dst / f'ClassB/v_b.tmp-{dead.pid}').exists()


def test_crash_midway_leaves_no_final_folder(src, tmp_path, monkeypatch):
    dst = tmp_path / 'dst'
    real = video_io.iter_frames

    def dies_after_three(path, fps=None):
        for i, image in enumerate(real(path, fps)):
            if i == 3:
                raise KeyboardInterrupt  # not a decode error: the run stops, like a kill
            yield image
    monkeypatch.setattr(video_io, 'iter_frames', dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        vid2img.main([str(src / 'ClassA'), str(dst)])
    assert not (dst / 'v_a').exists() and (dst / f'v_a.tmp-{os.getpid()}').is_dir()
    monkeypatch.setattr(video_io, 'iter_frames', real)
    assert vid2img.main([str(src / 'ClassA'), str(dst)]) == 0
    assert len(frames_of(dst / 'v_a')) == 12 and os.listdir(dst) == ['v_a']


def test_corrupt_videos_reported_at_end_others_extracted(src, tmp_path, capsys):
    noise = np.random.default_rng(1).integers(0, 256, 5000, np.uint8)
    (src / 'ClassA' / 'random.mp4').write_bytes(noise.tobytes())
    data = (src / 'ClassB' / 'v_b.avi').read_bytes()
    (src / 'ClassB' / 'cut.avi').write_bytes(data[: len(data) // 2])
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    summary = err[err.index('2 videos failed'):]
    assert 'random.mp4' in summary and 'cut.avi' in summary and 'Invalid data' in summary
    assert len(frames_of(dst / 'ClassA/v_a')) == 12 and len(frames_of(dst / 'ClassB/v_b')) == 9
    assert not (dst / 'ClassA/random').exists() and not (dst / 'ClassB/cut').exists()
    assert [p for p in dst.rglob('*') if '.tmp-' in p.name] == []


def test_parallel_command_line(src, tmp_path):
    dst = tmp_path / 'dst'
    script = os.path.join(ROOT, 'tools', 'vid2img.py')
    proc = subprocess.run([sys.executable, script, str(src), str(dst), '-j', '2'],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '3 videos extracted' in proc.stdout
    assert [len(frames_of(dst / r)) for r in ('ClassA/v_a', 'ClassB/v_b', 'ClassB/deeper/v_c')] == [12, 9, 7]


def test_same_folder_from_two_videos_is_an_error(src, tmp_path, capsys):
    make_video(src / 'ClassA' / 'v_a.avi', n=3)
    assert vid2img.main([str(src), str(tmp_path / 'dst')]) == 1
    assert 'same output folder' in capsys.readouterr().err
    assert not (tmp_path / 'dst' / 'ClassA' / 'v_a').exists()


def test_use_ffmpeg_command(src, tmp_path, monkeypatch, capsys):
    """A stand-in ffmpeg records its arguments and writes 3 frames where the pattern says."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = bin_dir / 'ffmpeg'
    fake.write_text(f'#!{sys.executable}\n'
                    'import os, sys\n'
                    'a = sys.argv[1:]\n'
                    f'open({str(tmp_path / "args.txt")!r}, "a").write(" ".join(a) + "\\n")\n'
                    'start = int(a[a.index("-start_number") + 1])\n'
                    'for i in range(start, start + 3): open(a[-1] % i, "wb").write(b"jpg")\n')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', str(bin_dir) + os.pathsep + os.environ['PATH'])
    dst = tmp_path / 'dst'
    assert vid2img.main([str(src / 'ClassA'), str(dst), '--use_ffmpeg']) == 0
    args = (tmp_path / 'args.txt').read_text()
    assert '-fps_mode passthrough' in args and '-start_number 1' in args and args.strip().endswith('img_%05d.jpg')
    assert frames_of(dst / 'v_a') == ['img_00001.jpg', 'img_00002.jpg', 'img_00003.jpg']

    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))  # no ffmpeg: PyAV, with a warning
    assert vid2img.main([str(src / 'ClassB'), str(tmp_path / 'dst2'), '--use_ffmpeg']) == 0
    assert 'no ffmpeg on PATH' in capsys.readouterr().err
    assert len(frames_of(tmp_path / 'dst2' / 'v_b')) == 9


def test_bad_template_rejected(src, tmp_path):
    with pytest.raises(SystemExit):
        vid2img.main([str(src), str(tmp_path / 'dst'), '--template', 'img_{:5d}.jpg'])
    assert vid2img.ffmpeg_pattern('img_{:05d}.jpg') == 'img_%05d.jpg'
    assert vid2img.ffmpeg_pattern('{}.jpg') == '%d.jpg'
