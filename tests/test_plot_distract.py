"""tools/plot_distract.py: known runs per fraction -> known table cells, and a figure that is a valid PNG."""
import json

import pytest
from PIL import Image

from tools.plot_distract import main


def write_run(root, fraction, name, top1, curve=(25.0, 60.0)):
    folder = root / f'f{fraction}' / 'log' / name
    folder.mkdir(parents=True)
    (folder / 'eval.txt').write_text(f'Testing Results: Prec@1 {top1:.3f} Prec@5 100.000 Loss 1.0 (240 videos)\n')
    (folder / 'done').write_text('60\n')
    (folder / 'args.txt').write_text(json.dumps({'epochs': 6}))
    (folder / 'log.csv').write_text(''.join(f'Epoch: [{e}][0/4]\nTesting Results: Prec@1 {v:.3f}\n'
                                            for e, v in enumerate(curve)))


def test_table_and_figure(tmp_path):
    for seed, top1 in enumerate((90.0, 94.0, 92.0)):
        write_run(tmp_path, 0, f'tsm8_s{seed}', top1)
    write_run(tmp_path, 75, 'tsm8_s0', 40.0, curve=(25.0, 40.0))  # never took off
    write_run(tmp_path, 75, 'tsm8_s1', 60.0)
    write_run(tmp_path, 75, 'cumulative8_s0', 97.5)
    write_run(tmp_path, 75, 'tsm2_s0', 55.0)  # the starting point: not a line
    figure = tmp_path / 'fig' / 'distract.png'
    lines = main([str(tmp_path), '--fractions', '0', '75', '--configs', 'tsm8', 'cumulative8',
                  '--figure', str(figure)]).splitlines()
    assert lines[0] == '| model | 0% distracting | 75% distracting |'
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]] for line in lines[2:4]}
    assert rows['TSM-8'] == ['92.00 ± 2.00, took off 3/3', '50.00 ± 14.14, took off 1/2']
    assert rows['ours-cumulative-8'] == ['not run', '97.50 (one seed), took off 1/1']
    with Image.open(figure) as image:
        image.verify()
        assert image.format == 'PNG' and image.size[0] > 300


def test_no_runs_stops_with_the_folder_named(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path)):
        main([str(tmp_path), '--figure', str(tmp_path / 'x.png')])


def test_a_record_keeps_every_run_and_the_table_counts_them_all(tmp_path):
    record = tmp_path / 'runs.csv'
    record.write_text('# seeds 0-1: an earlier machine\n'
                      'config,fraction,seed,top1,took_off,machine\n'
                      'tsm8,75,0,30.000,no,Xeon\n'
                      'tsm8,75,1,50.000,yes,Xeon\n'
                      'tsmall,75,0,95.000,yes,Xeon\n')
    root = tmp_path / 'sweep'
    write_run(root, 75, 'tsm8_s1', 70.0)  # re-run here: replaces the recorded seed 1
    write_run(root, 75, 'tsm8_s2', 40.0, curve=(25.0, 40.0))
    figure = tmp_path / 'distract.png'
    lines = main([str(root), '--fractions', '75', '--configs', 'tsm8', 'tsmall', '--figure', str(figure),
                  '--record', str(record), '--machine', 'EPYC']).splitlines()
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]] for line in lines[2:4]}
    assert rows['TSM-8'] == ['46.67 ± 20.82, took off 1/3']  # 30, 70, 40
    assert rows['TSM-all'] == ['95.00 (one seed), took off 1/1']
    assert record.read_text().splitlines() == [
        '# seeds 0-1: an earlier machine', 'config,fraction,seed,top1,took_off,machine',
        'tsm8,75,0,30.000,no,Xeon', 'tsm8,75,1,70.000,yes,EPYC', 'tsm8,75,2,40.000,no,EPYC',
        'tsmall,75,0,95.000,yes,Xeon']
    assert figure.exists()


def test_a_bad_record_row_names_its_line(tmp_path):
    record = tmp_path / 'runs.csv'
    record.write_text('config,fraction,seed,top1,took_off,machine\ntsm8,75,0,30.000,maybe,Xeon\n')
    write_run(tmp_path / 'sweep', 75, 'tsm8_s1', 70.0)
    with pytest.raises(SystemExit, match=r'runs.csv, line 2: took_off is .maybe.'):
        main([str(tmp_path / 'sweep'), '--fractions', '75', '--configs', 'tsm8',
              '--figure', str(tmp_path / 'x.png'), '--record', str(record)])


def test_welch_by_hand_and_the_table_against_the_baseline(tmp_path):
    from tools.plot_distract import welch
    # a = 1, 2, 3 (var 1), b = 5, 5, 8 (var 3): se^2 = 1/3 + 1 = 4/3, t = -4 / sqrt(4/3) = -2 sqrt(3);
    # df = (4/3)^2 / ((1/3)^2 / 2 + 1^2 / 2) = (16/9) / (5/9) = 3.2
    r = welch([1.0, 2.0, 3.0], [5.0, 5.0, 8.0])
    assert r['diff'] == pytest.approx(-4.0) and r['t'] == pytest.approx(-2 * 3 ** 0.5)
    assert r['df'] == pytest.approx(3.2)
    assert 0.0257 < r['p'] < 0.0405  # t = 3.464 two-sided: p 0.0405 on 3 df, 0.0257 on 4 (tables)
    assert welch([1.0], [2.0, 3.0]) is None and welch([1.0, 1.0], [2.0, 2.0]) is None
    for seed, (low, high) in enumerate(((30.0, 80.0), (32.0, 82.0), (29.0, 79.0))):
        write_run(tmp_path, 75, f'tsm8_s{seed}', low)
        write_run(tmp_path, 75, f'cumulative8_s{seed}', high)
    text = main([str(tmp_path), '--fractions', '75', '--configs', 'tsm8', 'cumulative8',
                 '--figure', str(tmp_path / 'f.png')])
    row = next(line for line in text.splitlines() if line.startswith('| ours-cumulative-8 | +50.00 (t'))
    assert row.endswith('): higher |')
