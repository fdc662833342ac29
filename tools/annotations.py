"""Official annotation layouts -> class names and the videos of each list, for tools/gen_lists.py.

One reader per data set (``READERS``), each taking gen_lists' parsed flags and returning ``(class names,
{role: entries})``: role 'train' or 'val' (or 'all', custom's one list), an entry ``(candidate paths relative
to --frame_root, 0-based label)``, the first candidate that exists being the one listed. The list and class
file names come from ops/dataset_config.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re

from tools.vid2img import DEFAULT_EXTS, TMP_RE

BREAKFAST_ACTIVITIES = ('cereals', 'coffee', 'friedegg', 'juice', 'milk',
                        'pancake', 'salat', 'sandwich', 'scrambledegg', 'tea')
Entries = list[tuple[list[str], int]]


class AnnotationError(ValueError):
    """An annotation file that does not have the official layout; the message names file and line."""


def _lines(path: str) -> list[tuple[int, str]]:
    """(line number, stripped text) of the non-blank lines; the official files have CRLF endings."""
    if not os.path.isfile(path):
        raise AnnotationError(f'{path}: annotation file not found')
    with open(path, encoding='utf-8-sig') as f:
        return [(i, line.strip()) for i, line in enumerate(f, start=1) if line.strip()]


def _first_file(folder: str, names: list[str]) -> str:
    for name in names:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise AnnotationError(f'{folder}: none of {", ".join(names)} found')


def _stem(path: str) -> str:
    return os.path.splitext(path)[0]


def ucf101(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """ucfTrainTestlist/: classInd.txt `1 ApplyEyeMakeup`; trainlist0K.txt `Class/v_..._c01.avi 1`;
    testlist0K.txt `Class/v_..._c01.avi`. Frames: frame_root/Class/v_... (or frame_root/v_...)."""
    ind = os.path.join(args.ann_dir, 'classInd.txt')
    names = []
    for lineno, line in _lines(ind):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(names) + 1:
            raise AnnotationError(f'{ind}:{lineno}: expected "{len(names) + 1} ClassName", got {line!r}')
        names.append(parts[1])
    index = {n.lower(): i for i, n in enumerate(names)}  # the lists spell some folders otherwise
    lists = {}
    for kind, out in (('train', 'train'), ('test', 'val')):
        path = os.path.join(args.ann_dir, f'{kind}list{args.split:02d}.txt')
        entries = []
        for lineno, line in _lines(path):
            video = line.split()[0].replace('\\', '/')
            cls = video.split('/')[0]
            if '/' not in video or cls.lower() not in index:
                raise AnnotationError(f'{path}:{lineno}: expected "Class/video.avi" with a class of {ind}, '
                                      f'got {line!r}')
            label = index[cls.lower()]
            if len(line.split()) > 1 and line.split()[1] != str(label + 1):
                raise AnnotationError(f'{path}:{lineno}: label {line.split()[1]} is not the id of {cls} in {ind}')
            entries.append(([_stem(video), _stem(video.split('/')[-1])], label))
        lists[out] = entries
    return names, lists


def hmdb51(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """testTrainMulti_7030_splits/: <class>_test_split<K>.txt with lines `video.avi 1|2|0`
    (1 train, 2 test, 0 unused); classes sorted by name. Frames: frame_root/<class>/<video>."""
    pattern = re.compile(rf'(.+)_test_split{args.split}\.txt$')
    files = sorted(f for f in os.listdir(args.ann_dir) if pattern.match(f)) if os.path.isdir(args.ann_dir) else []
    if not files:
        raise AnnotationError(f'{args.ann_dir}: no <class>_test_split{args.split}.txt file')
    names = [pattern.match(f).group(1) for f in files]
    train, test = [], []
    for label, (name, file) in enumerate(zip(names, files)):
        path = os.path.join(args.ann_dir, file)
        for lineno, line in _lines(path):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
                raise AnnotationError(f'{path}:{lineno}: expected "video.avi 0|1|2", got {line!r}')
            entry = ([f'{name}/{_stem(parts[0])}', _stem(parts[0])], label)
            if parts[1] == '1':
                train.append(entry)
            elif parts[1] == '2':
                test.append(entry)
    return names, {'train': train, 'val': test}


def something(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """something-something-v1-labels.csv (one name a line; sorted, as TSM), -train.csv and
    -validation.csv with `id;label` lines. Frames: frame_root/<id>/00001.jpg."""
    prefix = os.path.join(args.ann_dir, 'something-something-v1-')
    names = sorted(line for _, line in _lines(prefix + 'labels.csv'))
    index = {n: i for i, n in enumerate(names)}
    lists = {}
    for kind, out in (('train', 'train'), ('validation', 'val')):
        entries = []
        for lineno, line in _lines(f'{prefix}{kind}.csv'):
            vid, _, label = line.partition(';')
            if label not in index:
                raise AnnotationError(f'{prefix}{kind}.csv:{lineno}: expected "id;label" with a label of '
                                      f'{prefix}labels.csv, got {line!r}')
            entries.append(([vid], index[label]))
        lists[out] = entries
    return names, lists


def somethingv2(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """something-something-v2-labels.json {name: "id"}, -train.json / -validation.json lists of
    {"id", "template": "Putting [something] on [something]"} (the newer release drops the
    prefix: labels.json, train.json, validation.json). Frames: frame_root/<id>/000001.jpg."""
    def load(kind):
        path = _first_file(args.ann_dir, [f'something-something-v2-{kind}.json', f'{kind}.json'])
        with open(path, encoding='utf-8') as f:
            return path, json.load(f)
    path, label_ids = load('labels')
    names = sorted(label_ids, key=lambda n: int(label_ids[n]))
    if sorted(int(i) for i in label_ids.values()) != list(range(len(names))):
        raise AnnotationError(f'{path}: label ids must be 0..{len(names) - 1}, each once')
    lists = {}
    for kind, out in (('train', 'train'), ('validation', 'val')):
        path, items = load(kind)
        entries = []
        for k, item in enumerate(items):
            name = item.get('template', '').replace('[', '').replace(']', '')
            if name not in label_ids:
                raise AnnotationError(f'{path}: item {k} (id {item.get("id")}): template {name!r} is no label')
            if 'id' not in item:
                raise AnnotationError(f'{path}: item {k} has no "id"')
            entries.append(([str(item['id'])], int(label_ids[name])))
        lists[out] = entries
    return names, lists


def _kinetics_dirs(label: str) -> list[str]:
    """Class folder spellings in use: with '_' for ' ', TSM's (no quotes or parentheses either),
    and the label itself (official downloader; a path with a space is reported, not listed)."""
    tsm = label.replace(' ', '_').replace('"', '').replace('(', '').replace(')', '').replace("'", '')
    return list(dict.fromkeys([label.replace(' ', '_'), tsm, label]))


def kinetics(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """CSV `label,youtube_id,time_start,time_end,split` (kinetics_train.csv / train.csv,
    kinetics_val.csv / validate.csv); classes are the sorted labels of the train CSV. Frames:
    frame_root/[split/]<label>/<youtube_id>_<start:06d>_<end:06d>, or the same without <label>/."""
    def read(path):
        with open(path, newline='', encoding='utf-8-sig') as f:
            rows = list(csv.DictReader(f))
        if rows and not {'label', 'youtube_id', 'time_start', 'time_end'} <= set(rows[0]):
            raise AnnotationError(f'{path}: header must name label,youtube_id,time_start,time_end')
        return path, rows
    train_path, train_rows = read(args.train_csv or _first_file(args.ann_dir, ['kinetics_train.csv', 'train.csv']))
    names = sorted({row['label'] for row in train_rows})
    index = {n: i for i, n in enumerate(names)}
    lists = {}
    for out, (path, rows) in (('train', (train_path, train_rows)),
                              ('val', read(args.val_csv or _first_file(
                                  args.ann_dir, ['kinetics_val.csv', 'validate.csv', 'val.csv'])))):
        entries = []
        for k, row in enumerate(rows, start=2):
            if row['label'] not in index:
                raise AnnotationError(f'{path}:{k}: label {row["label"]!r} is not in the train CSV')
            clip = f'{row["youtube_id"]}_{int(float(row["time_start"])):06d}_{int(float(row["time_end"])):06d}'
            dirs = _kinetics_dirs(row['label'])
            split = row.get('split') or out
            entries.append(([f'{d}/{clip}' for d in dirs] + [f'{split}/{d}/{clip}' for d in dirs] + [clip],
                            index[row['label']]))
        lists[out] = entries
    return names, lists


BREAKFAST_NESTED = re.compile(r'(?:.*/)?P(\d+)/([^/]+)/P\d+_([a-z]+?)(?:_ch\d)?')  # P03/cam01/P03_cereals
BREAKFAST_FLAT = re.compile(r'(?:.*/)?P(\d+)_([a-z]+\d*)_P\d+_([a-z]+?)(?:_ch\d)?')  # P03_cam01_P03_cereals


def breakfast(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """No annotation file: the activity and the person are in the video name. Frame folders are
    found under frame_root as P03/cam01/P03_cereals (the BreakfastII_15fps_qvga_sync layout; stereo
    videos P03/stereo/P03_cereals_ch0 and _ch1 both count) or flat as P03_cam01_P03_cereals.
    Split K tests persons P{13K-10}..P{13K+2} (s1: P03-P15) and trains on the others (P16-P54).
    There is no list of the videos to expect, so only empty folders, not absent ones, are reported."""
    test_persons = range(13 * args.split - 10, 13 * args.split + 3)
    index = {n: i for i, n in enumerate(BREAKFAST_ACTIVITIES)}
    train, test = [], []
    for root, dirs, _ in os.walk(args.frame_root, followlinks=True):
        dirs.sort()
        for d in list(dirs):
            rel = os.path.relpath(os.path.join(root, d), args.frame_root).replace(os.sep, '/')
            m = BREAKFAST_NESTED.fullmatch(rel) or BREAKFAST_FLAT.fullmatch(rel)
            if m and m.group(3) in index and not TMP_RE.search(d):
                (test if int(m.group(1)) in test_persons else train).append(([rel], index[m.group(3)]))
                dirs.remove(d)  # a video folder holds frames, not videos
    if not train and not test:
        raise AnnotationError(f'{args.frame_root}: no Breakfast video folder (like P03/cam01/P03_cereals '
                              f'or P03_cam01_P03_cereals) found')
    return list(BREAKFAST_ACTIVITIES), {'train': train, 'val': test}


def custom(args: argparse.Namespace) -> tuple[list[str], dict[str, Entries]]:
    """frame_root/<class>/<video>/ frame folders (or, with --video, <class>/<video>.mp4 files);
    classes are the sorted class folder names."""
    root = args.frame_root
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith('.'))
    exts = {'.' + e for e in DEFAULT_EXTS.split(',')}
    videos = []  # (path relative to root, label)
    for label, name in enumerate(names):
        for entry in sorted(os.listdir(os.path.join(root, name))):
            path = os.path.join(root, name, entry)
            if entry.startswith('.'):
                continue
            if args.video and os.path.isfile(path) and os.path.splitext(entry)[1].lower() in exts \
                    or not args.video and os.path.isdir(path) and not TMP_RE.search(entry):
                videos.append((f'{name}/{entry}', label))
    if not videos:
        raise AnnotationError(f'{root}: no {"video file" if args.video else "frame folder"} in <class>/ folders')
    rng = random.Random(args.seed)
    val = set()
    if args.val_fraction > 0:  # per class, so that every class is in both lists
        for label in range(len(names)):
            own = [v for v in videos if v[1] == label]
            rng.shuffle(own)
            val.update(rel for rel, _ in own[:round(len(own) * args.val_fraction)])
    outputs = {'train': [v for v in videos if v[0] not in val],
               'val': [v for v in videos if v[0] in val]} if val else {'all': videos}
    return names, {out: [([rel], label) for rel, label in vs] for out, vs in outputs.items()}


READERS = {f.__name__: f for f in (ucf101, hmdb51, something, somethingv2, kinetics, breakfast, custom)}
HELP = {'ucf101': 'UCF101: ucfTrainTestlist/ classInd.txt, trainlist0K.txt, testlist0K.txt',
        'hmdb51': 'HMDB51: testTrainMulti_7030_splits/ <class>_test_splitK.txt',
        'something': 'Something-Something v1: something-something-v1-{labels,train,validation}.csv',
        'somethingv2': 'Something-Something v2: something-something-v2-{labels,train,validation}.json',
        'kinetics': 'Kinetics: CSVs label,youtube_id,time_start,time_end,split',
        'breakfast': 'Breakfast: person and activity from the folder names, split by person',
        'custom': 'a <class>/<video> tree of frame folders, or of video files with --video'}
