"""ops/video_io.py: exact frame counts, the requested frames in order, errors that name the file."""
import os

import av
import numpy as np
import pytest

from ops.video_io import VideoDecodeError, count_frames, iter_frames, read_frames


def frame_content(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Frame i: a flat colour that moves with i plus a white bar i * 4 px wide, so order is visible."""
    a = np.empty((height, width, 3), np.uint8)
    a[:] = ((i * 20) % 200 + 20, 220 - (i * 20) % 200, (i * 53) % 200 + 20)
    a[:, : 4 * (i % (width // 4))] = 255
    return a


def make_video(path, n: int = 12, width: int = 64, height: int = 48, codec: str = 'mpeg4', fps: int = 25):
    """Encode n frames of `frame_content` with PyAV."""
    os.makedirs(os.path.dirname(str(path)) or '.', exist_ok=True)
    with av.open(str(path), 'w') as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, 'yuv420p'
        for i in range(n):
            for packet in s.encode(av.VideoFrame.from_ndarray(frame_content(i, width, height), format='rgb24')):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return str(path)


def decode_with_av(path) -> list:
    """Independent reference: every frame PyAV decodes, as RGB arrays."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format='rgb24') for f in c.decode(video=0)]


def nearest_frame(image, n: int) -> int:
    """Which `frame_content` index an image shows (codec and JPEG noise are far below the gaps)."""
    a = np.asarray(image, dtype=np.float32)
    return int(np.argmin([np.abs(a - frame_content(i, a.shape[1], a.shape[0])).mean() for i in range(n)]))


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp('videos')
    return {
        'mp4': make_video(d / 'a.mp4'),
        'avi': make_video(d / 'b.avi', n=9),
        'mkv': make_video(d / 'c.mkv', n=14, codec='libx264'),  # B-frames: decoded out of order
    }


@pytest.mark.parametrize('kind,n', [('mp4', 12), ('avi', 9), ('mkv', 14)])
def test_count_frames_is_exact(videos, kind, n):
    assert count_frames(videos[kind]) == n == len(decode_with_av(videos[kind]))


def test_count_frames_does_not_trust_metadata(videos):
    with av.open(videos['mkv']) as c:
        assert c.streams.video[0].frames == 0  # Matroska stores no frame count
    assert count_frames(videos['mkv']) == 14


@pytest.mark.parametrize('kind', ['mp4', 'mkv'])
def test_read_frames_returns_requested_frames_in_order(videos, kind):
    reference = decode_with_av(videos[kind])
    indices = [5, 0, 5, 8, 1]
    images = read_frames(videos[kind], indices)
    assert len(images) == len(indices)
    for i, image in zip(indices, images):
        assert image.mode == 'RGB' and image.size == (64, 48)
        assert np.array_equal(np.asarray(image), reference[i])
        assert nearest_frame(image, len(reference)) == i
    assert images[0] is not images[2]  # a repeated index gives its own copy


def test_read_frames_index_out_of_range_names_file(videos):
    with pytest.raises(VideoDecodeError, match=r'b\.avi.*index 9.*only 9 frames'):
        read_frames(videos['avi'], [0, 9])
    assert len(read_frames(videos['avi'], [8])) == 1
    assert read_frames(videos['avi'], []) == []
    with pytest.raises(ValueError, match='non-negative'):
        read_frames(videos['avi'], [-1])


def test_iter_frames_yields_every_frame(videos):
    images = list(iter_frames(videos['mkv']))
    assert [nearest_frame(im, 14) for im in images] == list(range(14))


def test_iter_frames_resamples_by_time(videos):
    half = list(iter_frames(videos['mp4'], fps=12.5))  # 25 fps source
    assert [nearest_frame(im, 12) for im in half] == [0, 2, 4, 6, 8, 10]
    double = list(iter_frames(videos['mp4'], fps=50))
    assert [nearest_frame(im, 12) for im in double] == [i // 2 for i in range(24)]
    assert len(list(iter_frames(videos['mp4'], fps=25))) == 12


def test_corrupt_and_truncated_files_raise_decode_error_naming_file(tmp_path, videos):
    bad = tmp_path / 'random.mp4'
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = open(videos['mp4'], 'rb').read()
    truncated = tmp_path / 'truncated.mp4'
    truncated.write_bytes(data[: len(data) // 2])
    for path in (bad, truncated):
        for call in (count_frames, lambda p: read_frames(p, [0]), lambda p: list(iter_frames(p))):
            with pytest.raises(VideoDecodeError, match=path.name) as info:
                call(str(path))
            assert isinstance(info.value, ValueError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.mp4'):
        count_frames(str(tmp_path / 'nothere.mp4'))
