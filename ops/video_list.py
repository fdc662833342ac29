"""List files: ``path num_frames label [label ...]`` lines -> ``VideoRecord`` s, checked line by line.

A malformed line raises a ``ValueError`` naming ``file:line`` and what was expected; a video listed
twice is warned about once. ``BadVideoError`` is the error of a listed video that cannot be loaded
(raised by ops/frames.py and ops/dataset.py, naming the list line).
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass


class BadVideoError(ValueError):
    """A listed video that cannot be loaded: missing folder/file, missing or undecodable frame, no frames."""


@dataclass
class VideoRecord:
    """One line of a list file.

    Attributes:
        path: the video folder (or file), joined with the data set root.
        num_frames: frames in the video; None for a ``path label`` line of a video file (counted on use).
        labels: 0-based class ids (more than one for multi-label sets).
        source: the list file; line: the 1-based line number, for error messages.
    """
    path: str
    num_frames: int | None
    labels: list[int]
    source: str
    line: int

    @property
    def label(self) -> int:
        return self.labels[0]

    @property
    def where(self) -> str:
        return f'{self.source}:{self.line}'


def _positive_int(token: str, where: str, fields: list[str]) -> int:
    if not token.isdigit() or int(token) == 0:
        if not token.lstrip('+-').isdigit() and len(fields) > 3:
            raise ValueError(f'{where}: the line has {len(fields)} fields and the second, {token!r}, is not a frame '
                             f"count: expected 'path num_frames label [label ...]', and paths cannot contain "
                             f'spaces (rename {" ".join(fields[:-2])!r})')
        raise ValueError(f'{where}: num_frames must be a positive integer, got {token!r}'
                         + (' (paths cannot contain spaces)' if not token.lstrip('+-').isdigit() else ''))
    return int(token)


def _label(token: str, where: str, num_class: int | None) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f'{where}: label must be an integer class id, got {token!r}') from None
    upper = num_class if num_class is not None else math.inf
    if not 0 <= value < upper:
        raise ValueError(f'{where}: label {value} outside [0, {num_class}) (labels are 0-based)')
    return value


def _read_lines(list_file: str) -> list[str]:
    """The lines of a UTF-8 list, a byte-order mark at its start dropped.

    Raises:
        ValueError: a line that is not UTF-8, named ``file:line``.
    """
    with open(list_file, 'rb') as f:
        raw = f.read().splitlines()  # bytes: only \n, \r\n and \r end a line, as in an editor
    if raw and raw[0].startswith(b'\xef\xbb\xbf'):
        raw[0] = raw[0][3:]
    lines = []
    for number, data in enumerate(raw, start=1):
        try:
            lines.append(data.decode('utf-8'))
        except UnicodeDecodeError as err:
            raise ValueError(f'{list_file}:{number}: not UTF-8 text ({err.reason} at byte {err.start} of the '
                             f'line): save the list as UTF-8') from None
    return lines


def parse_list(list_file: str, root: str, num_class: int | None,
               video_source: str = 'frames') -> list[VideoRecord]:
    """Read a list file of lines ``path num_frames label [label ...]``.

    With ``video_source='video'`` a line may also be ``path label`` (then ``num_frames`` is None
    and counted by decoding when first needed); a line of 3+ fields is always read as
    ``path num_frames label ...``. Blank lines and lines starting with ``#`` are skipped; paths are
    relative to ``root`` unless absolute and may not contain spaces.

    The file is read as UTF-8, a byte-order mark at its start ignored. A video listed twice is warned
    about once (``RuntimeWarning`` naming the first repeated line and the count), as it trains twice.

    Raises:
        FileNotFoundError: ``list_file`` does not exist.
        ValueError: a malformed line (message ``file:line: what was expected``) or no videos at all.
    """
    if os.path.isdir(list_file):
        raise ValueError(f'{list_file} is a folder, not a list file')
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f'list file not found: {list_file}')
    records = []
    for line_no, text in enumerate(_read_lines(list_file), start=1):
        fields = text.split()
        if not fields or fields[0].startswith('#'):
            continue
        where = f'{list_file}:{line_no}'
        if video_source == 'video' and len(fields) == 2:
            count, label_tokens = None, fields[1:]
        elif len(fields) < 3:
            expected = "'path num_frames label [label ...]'" + (" or 'path label'" * (video_source == 'video'))
            raise ValueError(f'{where}: expected {expected}, got {len(fields)} field(s): {text.strip()!r}')
        else:
            count, label_tokens = _positive_int(fields[1], where, fields), fields[2:]
        labels = [_label(t, where, num_class) for t in label_tokens]
        records.append(VideoRecord(os.path.join(root, fields[0]), count, labels, list_file, line_no))
    if not records:
        raise ValueError(f'{list_file}: no videos listed (the file is empty or holds only comments)')
    first_line: dict[str, int] = {}
    repeated = []
    for r in records:
        if r.path in first_line:
            repeated.append((r, first_line[r.path]))
        first_line.setdefault(r.path, r.line)
    if repeated:
        r, first = repeated[0]
        warnings.warn(f'{r.where}: {r.path} is listed again (first at line {first}); {len(repeated)} repeated '
                      f'line(s) in {list_file}, each trained or scored once more', RuntimeWarning)
    return records
