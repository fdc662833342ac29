"""tools/demo.py on tiny trained checkpoints, an MP4 written here with PyAV and a frame folder; the online
(uni-directional) shift of ops/temporal_shift.py streamed frame by frame against the offline model."""
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

import opts
from builder import build_model
from ops.temporal_shift import temporal_shift
from tools import demo

ROOT = Path(__file__).resolve().parent.parent
TINY = ['--arch', 'resnet18', '--shift', '--pretrain', 'scratch', '--npb', '--img_size', '32', '--epochs', '1',
        '-b', '4', '-j', '0', '--device', 'cpu']


def write_mp4(frames, path: Path, fps: int = 10) -> None:
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, 'yuv420p'
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Tiny Move4MNIST, one-epoch checkpoints (clustering of all frames; online TSM), an MP4 of one validation
    video (upscaled to 64 px, 10 fps) and its frame folder."""
    import main as train_main
    from tools.make_move4mnist import main as make_move4mnist
    tmp = tmp_path_factory.mktemp('demo')
    data = tmp / 'data'
    make_move4mnist(['--out', str(data), '--num_train', '4', '--num_val', '2', '--seed', '1', '--size', '32'])
    ckpts = {}
    for name, flags in (('cluster', ['--num_segments', '4', '--cluster', 'cumulative', '--frames', 'all']),
                        ('online', ['--num_segments', '4', '--online'])):
        train_main.main(['move4mnist', 'RGB', '--root_path', str(data), *TINY, '--root_log', str(tmp / 'log'),
                         '--root_model', str(tmp / 'ckpt'), '--store_name', name, *flags])
        ckpts[name] = str(tmp / 'ckpt' / name / 'ckpt.pth.tar')
    folder = data / 'movingmnist' / 'jpg' / 'val' / 'left_0'
    frames = [Image.open(folder / f'{i}.jpg').convert('RGB').resize((64, 64)) for i in range(32)]
    write_mp4(frames, tmp / 'left.mp4')
    return tmp, ckpts, tmp / 'left.mp4', folder


def own_model(path: str):
    ckpt = torch.load(path, weights_only=True)
    args = opts.parse_args([ckpt['args']['dataset'], 'RGB'])
    vars(args).update(ckpt['args'])
    model = build_model(args, 4, print_spec=False, pretrain='scratch')
    model.load_state_dict(ckpt['state_dict'])
    return model.eval(), args


def decoded_input(video: Path, args, model) -> torch.Tensor:
    """Every frame of the MP4 through main.py's validation transform: (1, T*3, H, W)."""
    from builder import build_transform
    with av.open(str(video)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    return build_transform(args, model, train=False, flip=False)(frames)[None]


def test_checkpoint_stores_the_class_names_of_the_class_file(setup):
    _, ckpts, _, _ = setup
    assert torch.load(ckpts['cluster'], weights_only=True)['class_names'] == ['left', 'right', 'up', 'down']


def test_demo_on_an_mp4_prints_the_topk_and_writes_the_figure_and_a_gif(setup):
    tmp, ckpts, video, _ = setup
    png, gif = tmp / 'clip.png', tmp / 'clip.gif'
    run = subprocess.run([sys.executable, str(ROOT / 'tools' / 'demo.py'), ckpts['cluster'], str(video), '--topk', '3',
                          '--out', str(png), '--out_video', str(gif), '--no_progress'],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.split('top-3 (whole video):\n')[1].splitlines()[:3]
    printed = [(line.split()[1], float(line.split()[0])) for line in lines]
    model, args = own_model(ckpts['cluster'])
    with torch.no_grad():
        probs = model(decoded_input(video, args, model)).softmax(1)[0]
    names = ['left', 'right', 'up', 'down']
    expected = [(names[int(i)], float(p)) for p, i in zip(*probs.topk(3))]
    assert [n for n, _ in printed] == [n for n, _ in expected]
    assert [p for _, p in printed] == pytest.approx([float(p) for _, p in expected], abs=1.5e-3)
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 300
    with Image.open(gif) as image:  # Pillow merges equal neighbouring frames, adding up their durations
        durations = []
        for i in range(image.n_frames):
            image.seek(i)
            durations.append(image.info['duration'])
        assert image.size == (192, 192) and image.n_frames > 16 and sum(durations) == 32 * 100


def test_frame_folder_chunked_and_windows(setup, capsys):
    tmp, ckpts, _, folder = setup
    whole = demo.main([ckpts['cluster'], str(folder), '--no_progress'])
    chunked = demo.main([ckpts['cluster'], str(folder), '--chunk_frames', '8', '--no_progress'])
    torch.testing.assert_close(chunked['probs'], whole['probs'], rtol=0, atol=1e-5)
    assert whole['frames'] == 32 and whole['assign'].shape == (32,) and whole['assign'][-1] == 3
    png = tmp / 'windows.png'
    result = demo.main([ckpts['cluster'], str(folder), '--fps', '8', '--window', '1', '--stride', '0.5',
                        '--out', str(png), '--out_video', str(tmp / 'w.mp4'), '--no_progress'])
    assert result['windows'] == [(0, 8), (4, 12), (8, 16), (12, 20), (16, 24), (20, 28), (24, 32)]
    first = demo.main([ckpts['cluster'], str(folder), '--fps', '8', '--no_progress'])  # the same frames alone
    with torch.no_grad():
        model, args = own_model(ckpts['cluster'])
        part = demo.classify(model, args, demo.load_video(str(folder), args.scale_size, 32).crops[:8],
                             torch.device('cpu'))['probs']
    torch.testing.assert_close(result['window_probs'][0], part)
    assert not torch.allclose(result['window_probs'][0], first['probs'])
    assert png.stat().st_size > 0 and demo.video_fps(str(tmp / 'w.mp4')) == 8


def test_unreadable_inputs_are_named(setup, tmp_path):
    _, ckpts, _, _ = setup
    bad = tmp_path / 'broken.mp4'
    bad.write_text('not a video')
    run = subprocess.run([sys.executable, str(ROOT / 'tools' / 'demo.py'), ckpts['cluster'], str(bad)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and f'error: {bad}' in run.stderr and 'Traceback' not in run.stderr
    with pytest.raises(FileNotFoundError, match='missing.mp4'):
        demo.main([ckpts['cluster'], str(tmp_path / 'missing.mp4')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no frame images'):
        demo.main([ckpts['cluster'], str(tmp_path / 'empty')])
    with pytest.raises(ValueError, match='not trained with --online'):
        demo.main([ckpts['cluster'], str(tmp_path / 'empty'), '--online'])


def test_labels_name_the_classes_of_a_checkpoint_without_them(setup, tmp_path, capsys):
    _, ckpts, _, folder = setup
    ckpt = torch.load(ckpts['cluster'], weights_only=True)
    del ckpt['class_names']
    old = tmp_path / 'old.pth.tar'
    torch.save(ckpt, old)
    assert demo.main([str(old), str(folder), '--no_progress'])['names'] == ['0', '1', '2', '3']
    assert 'give --labels FILE' in capsys.readouterr().out
    labels = tmp_path / 'labels.txt'
    labels.write_text('1 west\n2 east\n3 north\n4 south\n')
    assert demo.main([str(old), str(folder), '--labels', str(labels), '--no_progress'])['names'][0] == 'west'


# ------------------------------------------------------------------------------------------------ online TSM
def test_online_shift_moves_one_fold_from_the_past_only():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(6, 8, 1, 1)  # N=2 clips of T=3, C=8
    out = temporal_shift(x, 3, fold_div=4, online=True).view(2, 3, 8)
    x = x.view(2, 3, 8)
    assert torch.equal(out[:, 1:, :2], x[:, :-1, :2]) and torch.equal(out[:, 0, :2], torch.zeros(2, 2))
    assert torch.equal(out[:, :, 2:], x[:, :, 2:])


def test_streamed_outputs_equal_the_offline_unidirectional_model():
    args = opts.parse_args(['move4mnist', 'RGB', *TINY[:6], '--img_size', '32', '--num_segments', '4', '--online'])
    torch.manual_seed(0)
    model = build_model(args, 4, print_spec=False).eval()
    for m in model.modules():  # BatchNorm statistics other than the identity, so the test sees them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(0)
    crops = [Image.fromarray(np.asarray(torch.randint(0, 256, (32, 32, 3), generator=g), dtype=np.uint8))
             for _ in range(7)]
    streamed = demo.stream(model, demo.Video(crops, 10.0, 'random'), torch.device('cpu'), list('abcd'), 4,
                           progress=False)
    x = demo.to_tensor(crops, model).view(7, 3, 32, 32)
    with torch.no_grad():
        offline = model.run_late(model.run_early(x, 7), 7)  # per-frame logits of the whole clip at once
        clip = model.run_late(model.run_early(x[:4], 4), 4)  # the model's forward before the consensus, T = 4
    torch.testing.assert_close(streamed['logits'], offline, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(streamed['logits'][:4], clip, rtol=1e-5, atol=1e-5)
    assert len(streamed['latency_ms']) == 7
    # the bi-directional model would see the future: its outputs differ, and it refuses to stream
    for m in model.modules():
        if hasattr(m, 'online'):
            m.online = False
    with torch.no_grad():
        assert not torch.allclose(model.run_late(model.run_early(x, 7), 7), offline, atol=1e-4)
    with pytest.raises(ValueError, match='uni-directional'):
        demo.stream(model, demo.Video(crops, 10.0, 'random'), torch.device('cpu'), list('abcd'), 4, progress=False)


def test_demo_streams_an_online_checkpoint(setup, capsys):
    tmp, ckpts, video, _ = setup
    assert torch.load(ckpts['online'], weights_only=True)['args']['online'] is True
    result = demo.main([ckpts['online'], str(video), '--online', '--out', str(tmp / 'online.png'), '--no_progress'])
    text = capsys.readouterr().out
    assert 'online: 32 frames, latency per frame median' in text and 'frame    31' in text
    assert result['running'].shape == (32, 4) and (tmp / 'online.png').stat().st_size > 0
    expected = result['logits'][-4:].mean(0).softmax(0)
    torch.testing.assert_close(result['probs'], expected)
