"""tools/summarize_study.py: the study table averages the seeds it finds; unfinished runs show only their curve."""
import json

from tools.summarize_study import main, model_flags


def write_run(root, name, top1, wall, epochs=4):
    folder = root / 'log' / name
    folder.mkdir(parents=True)
    (folder / 'eval.txt').write_text(f'Testing Results: Prec@1 {top1:.3f} Prec@5 100.000 Loss 1.00000 (8 videos)\n')
    (folder / 'done').write_text(f'{wall}\n')
    (folder / 'args.txt').write_text(json.dumps({'epochs': epochs}))
    curve = [25.0, 40.0, top1]
    (folder / 'log.csv').write_text(''.join(f'Epoch: [{e}][0/4]\nTesting Results: Prec@1 {v:.3f} Prec@5 100.000 '
                                            f'Loss 1.0\nBest Prec@1: {v:.3f}\n' for e, v in enumerate(curve)))


def test_table_has_mean_and_std_over_seeds(tmp_path):
    write_run(tmp_path, 'tsm8_s0', 50.0, 40)
    write_run(tmp_path, 'tsm8_s1', 60.0, 80)
    (tmp_path / 'log' / 'tsm8_s2').mkdir()  # unfinished: no eval.txt, and its curve so far
    (tmp_path / 'log' / 'tsm8_s2' / 'log.csv').write_text('Testing Results: Prec@1 30.000\nTesting Results: '
                                                           'Prec@1 62.500\n')
    write_run(tmp_path, 'cumulative8_s0', 70.0, 120)
    table = main([str(tmp_path), 'tsm8', 'cumulative8', '--no_profile'])
    main_table, curves = table.split('\n\n')
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[1:-1]]
            for line in main_table.splitlines()[2:]}
    assert rows['tsm8'][1] == '2' and rows['tsm8'][2] == '55.00 ± 7.07' and rows['tsm8'][7] == '15'
    assert rows['tsm8'][3] == '50.00, 60.00'
    assert rows['cumulative8'][2] == '70.00 (one seed)' and rows['cumulative8'][4] == '94.08 ± 0.25'
    runs = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]] for line in curves.splitlines()[2:]}
    assert runs['tsm8_s0'] == ['never', '25 40 50'] and runs['tsm8_s1'] == ['2', '25 40 60']
    assert runs['cumulative8_s0'] == ['2', '25 40 70'] and 'tsm8_s2' not in runs
    assert runs['tsm8_s2 (unfinished, not in the table)'] == ['1', '30 62']


def test_model_flags():
    assert model_flags('tsmall') == ['--num_segments', '32']
    assert model_flags('slope16') == ['--cluster', 'slope', '--frames', '32', '--num_segments', '16']


def test_curve_with_eval_freq_2_names_its_epochs(tmp_path):
    folder = tmp_path / 'log' / 'tsm8_s0'
    write_run(tmp_path, 'tsm8_s0', 90.0, 40)
    (folder / 'log.csv').write_text(''.join(f'Epoch: [{e}][0/4]\n' + (f'Testing Results: Prec@1 {v:.3f}\n' if v else '')
                                            for e, v in enumerate([0, 25.0, 0, 75.0, 0, 90.0])))
    curves = main([str(tmp_path), 'tsm8', '--no_profile']).split('\n\n')[1]
    assert '| tsm8_s0 | 3 | 1:25 3:75 5:90 |' in curves


def test_brief_table_names_each_model_its_frames_top1_and_where_the_runs_are(tmp_path):
    """The quickstart's closing table: one row a model, the frames it sees, each seed's top-1 and minutes."""
    write_run(tmp_path, 'cumulative8_s0', 96.25, 300)
    write_run(tmp_path, 'tsm8_s0', 91.5, 150)
    lines = main([str(tmp_path), 'cumulative8', 'tsm8', '--no_profile', '--brief']).splitlines()
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]] for line in lines[2:4]}
    assert rows['cumulative8'] == ['all 32 frames -> 8 cumulative clusters', '—', '96.2', '5.0']
    assert rows['tsm8'] == ['8 sampled frames', '—', '91.5', '2.5']
    assert lines[-2] == f"checkpoints: {tmp_path / 'checkpoint' / '<model>_s<seed>' / 'ckpt.best.pth.tar'}"
    assert lines[-1] == f"TensorBoard: tensorboard --logdir {tmp_path / 'log'}"
    assert len(lines) <= 8  # readable without scrolling


def test_frames_seen():
    from tools.summarize_study import frames_seen
    assert frames_seen('tsmall') == 'all 32 frames' and frames_seen('tsm16') == '16 sampled frames'
    assert frames_seen('slope16') == 'all 32 frames -> 16 slope clusters'


def write_curve(root, name, curve):
    (root / 'log' / name / 'log.csv').write_text(''.join(f'Epoch: [{e}][0/4]\nTesting Results: Prec@1 {v:.3f}\n'
                                                         for e, v in enumerate(curve)))


def test_decisive_table_rows_in_table1_order_with_took_off_and_seconds_per_epoch(tmp_path):
    """Known eval.txt / log.csv / done values -> known cells; a seed that never passed the level does not count."""
    write_run(tmp_path, 'tsm8_s0', 80.0, 60, epochs=6)
    write_run(tmp_path, 'tsm8_s1', 90.0, 120, epochs=6)
    write_run(tmp_path, 'tsm8_s2', 40.0, 90, epochs=6)  # curve 25 40 40: never above 50
    write_run(tmp_path, 'tsm2_s0', 55.0, 30, epochs=6)  # the starting point: not a Table 1 row
    write_run(tmp_path, 'cumulative16_s0', 95.0, 300, epochs=6)
    write_curve(tmp_path, 'cumulative16_s0', [30.0, 60.0, 45.0])  # passed 60 at epoch 1, then fell back
    lines = main([str(tmp_path), '--decisive', '--no_profile']).splitlines()
    assert '> 50% val. top-1' in lines[0] and 's/epoch' in lines[0]
    rows = [[c.strip() for c in line.split('|')[1:-1]] for line in lines[2:11]]
    assert [r[0] for r in rows] == ['tsm8', 'tsm16', 'tsmall', 'uniform8', 'slope8', 'cumulative8', 'uniform16',
                                    'slope16', 'cumulative16']
    assert rows[0] == ['tsm8', '3', '2/3', '70.00 ± 26.46', '80.00, 90.00, 40.00', '90.13 ± 0.38', '—', '15']
    assert rows[1] == ['tsm16', '0', '—', '—', '—', '93.78 ± 0.33', '—', '—']
    assert rows[8] == ['cumulative16', '1', '1/1', '95.00 (one seed)', '95.00', '95.27 ± 0.21', '—', '50']
    high = main([str(tmp_path), 'tsm8', '--decisive', '--no_profile', '--took_off', '85']).splitlines()
    assert len([line for line in high if line.startswith('| tsm8 |')]) == 1
    assert '| tsm8 | 3 | 1/3 |' in high[2] and '> 85% val. top-1' in high[0]
    warm = main([str(tmp_path), 'tsm2', 'tsm8', '--warm', 'tsm2', '--decisive', '--no_profile']).split('\n\n')
    assert [line.split('|')[1].strip() for line in warm[0].splitlines() if line.startswith('| t')] == ['tsm8']
    curves = warm[-1].splitlines()  # the curves: the starting points first, then the rows
    assert curves[2] == '| tsm2_s0 (starting points) | 25 40 55 |'
    assert curves[3] == '| tsm8_s0, s1, s2 | 25 40 80 / 25 40 90 / 25 40 40 |'


def test_decisive_seconds_per_epoch_from_the_timed_seeds_only(tmp_path):
    """--time_seeds: s/epoch averages only those seeds' wall times; top-1 still uses every seed."""
    write_run(tmp_path, 'tsm8_s0', 80.0, 600, epochs=6)  # ran on a loaded machine: 100 s/epoch
    write_run(tmp_path, 'tsm8_s1', 90.0, 60, epochs=6)
    write_run(tmp_path, 'tsm8_s2', 70.0, 120, epochs=6)
    lines = main([str(tmp_path), 'tsm8', '--decisive', '--no_profile', '--time_seeds', '1', '2']).splitlines()
    assert [c.strip() for c in lines[2].split('|')[1:-1]][3:] == ['80.00 ± 10.00', '80.00, 90.00, 70.00',
                                                                   '90.13 ± 0.38', '—', '15']
    assert any(line.endswith('mean over seeds 1, 2.') for line in lines)
    every = main([str(tmp_path), 'tsm8', '--decisive', '--no_profile']).splitlines()
    assert every[2].endswith('| 43 |') and any(line.endswith('mean over seeds.') for line in every)
