"""tools/benchmark_clustering.py: every piece is timed, on a small tensor, and the share column follows --step_ms."""
import shutil

import pytest

from ops import compiled
from tools.benchmark_clustering import main


def test_every_piece_is_timed_and_the_share_is_its_fraction_of_the_step(capsys):
    rows = dict(main(['--frames', '6', '--channels', '4', '--size', '5', '--clusters', '3', '--repeat', '2',
                      '--step_ms', '1000']))
    expected = {'sign_codes', 'hamming_from_codes', 'cumulative_assign', 'slope_assign', 'aggregate forward',
                'aggregate forward + backward', 'uniform clustering forward + backward',
                'slope clustering forward + backward', 'cumulative clustering forward + backward'}
    assert set(rows) == expected and all(ms > 0 for ms in rows.values())
    out = capsys.readouterr().out
    ms = rows['sign_codes']
    assert f'| sign_codes | {ms:.2f} | {ms / 10:.2f}% |' in out


@pytest.mark.skipif(shutil.which('g++') is None and shutil.which('c++') is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_fused_rows_when_asked(capsys):
    rows = dict(main(['--frames', '5', '--channels', '3', '--size', '4', '--clusters', '2', '--repeat', '1',
                      '--fused']))
    assert {'neighbour_hamming, fused', 'neighbour_hamming, eager', 'cumulative clustering forward + backward, '
            'fused', 'slope clustering forward + backward, fused', 'cumulative_assign, fused',
            'slope_assign, fused'} <= set(rows)
    assert {'aggregate forward + backward, fused weights',
            'cumulative clustering forward + backward, fused distances only'} <= set(rows)
    assert not compiled.fused_failed()
    assert 'compiled == eager (distances, every rule, means): yes' in capsys.readouterr().out
