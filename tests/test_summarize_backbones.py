"""tools/summarize_backbones.py: a row per configuration with its top-1, whether it took off, the GMACs at the inputs
trained on and at the backbone's standard input, and seconds per epoch; unfinished runs show their curve."""
import json

from tools.summarize_backbones import gmacs_text, input_text, main, standard_flags


def write_run(root, name, curve, wall, epochs):
    folder = root / 'log' / name
    folder.mkdir(parents=True)
    (folder / 'eval.txt').write_text(f'Testing Results: Prec@1 {max(curve):.3f} Prec@5 100.000 Loss 1.0 (8 videos)\n')
    (folder / 'done').write_text(f'{wall}\n')
    (folder / 'args.txt').write_text(json.dumps({'epochs': epochs}))
    (folder / 'log.csv').write_text(''.join(f'Epoch: [{e}][0/4]\nTesting Results: Prec@1 {v:.3f} Prec@5 100.000 '
                                            f'Loss 1.0\nBest Prec@1: {v:.3f}\n' for e, v in enumerate(curve)))


def rows_of(table):
    main_table, curves = table.split('\n\n')
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in main_table.splitlines()[2:]}
    runs = {line.split('|')[1].strip(): line.split('|')[2].strip() for line in curves.splitlines()[2:]}
    return rows, runs


def test_table_reads_runs_and_says_which_took_off(tmp_path):
    write_run(tmp_path, 'r3d_18-8', [25.0, 48.0, 75.0], wall=300, epochs=3)
    write_run(tmp_path, 's3d', [25.0, 25.0, 30.0], wall=90, epochs=3)
    (tmp_path / 'log' / 'mc3_18').mkdir(parents=True)  # started, stopped before its evaluation
    (tmp_path / 'log' / 'mc3_18' / 'log.csv').write_text('Epoch: [0][0/4]\nTesting Results: Prec@1 55.000\n')
    table = main([str(tmp_path), '--no_profile',
                  '--config', 'r3d_18-8', '--arch r3d_18 --num_segments 8 --sample_rate 4 --img_size 32',
                  '--config', 's3d', '--arch s3d --num_segments 8 --sample_rate 4 --img_size 32',
                  '--config', 'mc3_18', '--arch mc3_18 --num_segments 8 --sample_rate 4 --img_size 32',
                  '--config', 'x3d_xs', '--arch x3d_xs --num_segments 8 --sample_rate 4 --img_size 32'])
    rows, runs = rows_of(table)
    assert rows['r3d_18-8'] == ['8x32² (stride 4)', '75.0', 'yes, epoch 2', '—', '—', '100']
    assert rows['s3d'][1:3] == ['30.0', 'never'] and rows['s3d'][5] == '30'
    assert rows['mc3_18'][1:3] == ['not finished', 'yes, epoch 0'] and rows['mc3_18'][5] == '—'
    assert rows['x3d_xs'][1:3] == ['not finished', '—']  # never started: no curve
    assert runs == {'r3d_18-8': '25 48 75', 's3d': '25 25 30', 'mc3_18 (unfinished)': '55'}


def test_gmacs_as_trained_and_at_the_standard_input(tmp_path):
    """Counted by tools/profile_model.py on the meta device: R3D-18 on 8 frames at 32 px is 1.66 GMACs, and its
    standard clip (16x112², torchvision's table) 40.70."""
    table = main([str(tmp_path), '--config', 'r3d_18', '--arch r3d_18 --num_segments 8 --sample_rate 4 '
                  '--img_size 32 --scale_size 32'])
    rows, _ = rows_of(table)
    assert rows['r3d_18'][3] == '1.66' and rows['r3d_18'][4] == '40.70 (16x112²)'


def test_standard_flags_keep_a_rows_own_frames_and_clustering():
    flags = '--arch r3d_18 --cluster cumulative --frames 32 --num_segments 8 --img_size 32 --scale_size 32'.split()
    std = standard_flags(flags, plain=False)
    assert std == ['--arch', 'r3d_18', '--cluster', 'cumulative', '--frames', '32', '--num_segments', '8',
                   '--img_size', '112', '--scale_size', '112']
    assert input_text(std) == '32->8 cumulative x 112²'
    clip = standard_flags('--arch s3d --num_segments 8 --sample_rate 4 --img_size 32'.split(), plain=True)
    assert clip == ['--arch', 's3d', '--num_segments', '16', '--img_size', '224', '--scale_size', '224']
    assert standard_flags(['--arch', 'resnet18'], plain=True) is None


def test_gmacs_text_keeps_three_digits_below_one():
    assert gmacs_text(0.052862336) == '0.0529' and gmacs_text(0.18345) == '0.183' and gmacs_text(40.696) == '40.70'
