"""ops/run_log.py: rank 0 writes log.csv and TensorBoard scalars; other ranks (no folder) write nothing."""
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ops.run_log import RunLog


def test_lines_go_to_log_csv_and_scalars_to_tensorboard(tmp_path):
    log = RunLog(str(tmp_path))
    log.line('Epoch: [0][0/4]')
    log.line('Testing Results: Prec@1 50.000')
    log.scalars({'val/top1': 50.0, 'lr': 0.1}, 3)
    log.close()
    assert (tmp_path / 'log.csv').read_text() == 'Epoch: [0][0/4]\nTesting Results: Prec@1 50.000\n'
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars('val/top1')] == [(3, 50.0)]
    again = RunLog(str(tmp_path))  # a resumed run appends
    again.line('resumed')
    again.close()
    assert (tmp_path / 'log.csv').read_text().endswith('50.000\nresumed\n')


def test_a_rank_without_a_folder_writes_nothing(tmp_path, capsys):
    log = RunLog(None)
    log.line('not shown')
    log.scalars({'lr': 0.1}, 0)
    log.close()
    assert capsys.readouterr().out == '' and list(tmp_path.iterdir()) == []
