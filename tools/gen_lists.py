"""Write TSM-style list files (`path num_frames label`) and the class list of a data set.

One tool for what TSM's `tools/gen_label_*.py` did per data set. It reads the official annotation
files and the frame folders that `tools/vid2img.py` extracted, and writes into --out_dir (default:
--frame_root, where ops/dataset_config.py looks for the lists and the class file of a data set):

  data set      lists (train, val)                                     class list
  ucf101        ucf101_rgb_{train,val}_split_{K}.txt                   classInd.txt
  hmdb51        hmdb51_rgb_{train,val}_split_{K}.txt                   classInd.txt
  breakfast     breakfast_rgb_{train,val}_split_{K}.txt                classInd.txt
  custom        custom_list.txt, or custom_{train,val}.txt             classInd.txt
  something     train_videofolder.txt, val_videofolder.txt             category.txt
  somethingv2   train_videofolder.txt, val_videofolder.txt             category.txt
  kinetics      train_videofolder.txt, val_videofolder.txt             category.txt

`classInd.txt` holds `1 name` lines (1-based ids, as UCF101's own file; list labels are 0-based);
`category.txt` holds one name per line, line i (0-based) naming label i, as TSM's. --class_format
picks the other. Paths are relative to --frame_root; num_frames is the number of files in the folder
that match --template, which must be numbered --start_index, --start_index+1, ... without a gap.
A video whose folder is missing, empty, has a gap or whose path holds a space (list lines are split
on white space) is skipped, counted in the summary and listed in `missing_<list>` next to the list;
--strict makes that an error (exit 1).

The same lists serve the Flow stream: tools/extract_flow.py writes the flow beside the frames
(`flow_x_00001.jpg` ... for the pairs of frames 1-2, 2-3, ...), and for Flow a list line of N frames
gives the N - 1 pairs (ops/dataset.py), so no Flow list is written. Make the lists from the RGB frames
(the flow files do not match --template and are not counted).

    python tools/gen_lists.py ucf101 --ann_dir ucfTrainTestlist --frame_root data/ucf101 --split 1
    python tools/gen_lists.py custom --video --frame_root my_videos --val_fraction 0.2 -j 4
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from multiprocessing import Pool

from ops import video_io
from tools.vid2img import DEFAULT_EXTS, TMP_RE, split_template

BREAKFAST_ACTIVITIES = ('cereals', 'coffee', 'friedegg', 'juice', 'milk',
                        'pancake', 'salat', 'sandwich', 'scrambledegg', 'tea')
DEFAULT_TEMPLATE = {'something': '{:05d}.jpg', 'somethingv2': '{:06d}.jpg'}  # else img_{:05d}.jpg


class AnnotationError(ValueError):
    """An annotation file that does not have the official layout; the message names file and line."""


# ---------------------------------------------------------------- frame folders and list files

def frame_count(folder: str, template: str, start_index: int = 1) -> tuple[int, str | None]:
    """(number of frames, None) for a usable frame folder, else (0, why not)."""
    if not os.path.isdir(folder):
        return 0, 'missing: no such folder'
    prefix, _, suffix = split_template(template)
    numbers = []
    for name in os.listdir(folder):
        digits = name[len(prefix):len(name) - len(suffix)]
        if name.startswith(prefix) and name.endswith(suffix) and digits.isdigit() \
                and template.format(int(digits)) == name:
            numbers.append(int(digits))
    if not numbers:
        return 0, f'empty: no file named like {template}'
    numbers.sort()
    for expected, number in enumerate(numbers, start=start_index):
        if number != expected:
            return 0, f'gap: no {template.format(expected)} (frames are numbered from {start_index} without a gap)'
    return len(numbers), None


def write_list(out_path: str, entries: list[tuple[list[str], int]], root: str,
               count: Callable[[str], tuple[int, str | None]]) -> tuple[int, int]:
    """Write `path num_frames label` for each entry that `count` finds usable.

    Args:
        entries: (candidate paths relative to root, label); the first that exists is used.
        count: path relative to root -> (number of frames, None) or (0, why it is unusable).
    Returns:
        (videos written, videos skipped); the skipped ones are listed in `missing_<list name>`.
    """
    lines, skipped = [], []
    for candidates, label in entries:
        rel = next((c for c in candidates if os.path.exists(os.path.join(root, c))), candidates[0])
        n, problem = count(rel)
        if not problem and any(c.isspace() for c in rel):
            problem = ("space: list lines are split on white space; rename the folder, e.g. "
                       "for d in *' '*; do mv \"$d\" \"${d// /_}\"; done")
        if problem:
            skipped.append((rel, problem))
        else:
            lines.append(f'{rel} {n} {label}\n')
    with open(out_path, 'w') as f:
        f.writelines(lines)
    missing_path = os.path.join(os.path.dirname(out_path), 'missing_' + os.path.basename(out_path))
    print(f'{out_path}: {len(lines)} videos, {len(skipped)} skipped')
    if skipped:
        with open(missing_path, 'w') as f:
            f.writelines(f'{rel} {why}\n' for rel, why in skipped)
        reasons = Counter(why.split(':')[0] for _, why in skipped)
        print(f'  skipped {len(skipped)} videos under {root} '
              f'({", ".join(f"{k} {v}" for k, v in reasons.items())}), listed in {missing_path}:')
        for rel, why in skipped[:5]:
            print(f'    {rel}: {why}')
        if len(skipped) > 5:
            print(f'    ... and {len(skipped) - 5} more')
    elif os.path.exists(missing_path):
        os.remove(missing_path)  # a stale report from an earlier run would mislead
    return len(lines), len(skipped)


def write_classes(out_dir: str, names: list[str], fmt: str) -> str:
    """Write the class list as `classInd.txt` (`1 name`) or `category.txt` (one name a line)."""
    path = os.path.join(out_dir, 'classInd.txt' if fmt == 'classind' else 'category.txt')
    os.makedirs(out_dir, exist_ok=True)
    with open(path, 'w') as f:
        f.writelines(f'{i + 1} {name}\n' if fmt == 'classind' else f'{name}\n' for i, name in enumerate(names))
    print(f'{path}: {len(names)} classes')
    return path


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


# ---------------------------------------------------------------- one function per data set
# Each returns (class names, {list file name: entries}); entries as write_list takes them.

def ucf101(args):
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
        lists[f'ucf101_rgb_{out}_split_{args.split}.txt'] = entries
    return names, lists


def hmdb51(args):
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
    return names, {f'hmdb51_rgb_train_split_{args.split}.txt': train,
                   f'hmdb51_rgb_val_split_{args.split}.txt': test}


def something(args):
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
        lists[f'{out}_videofolder.txt'] = entries
    return names, lists


def somethingv2(args):
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
        lists[f'{out}_videofolder.txt'] = entries
    return names, lists


def _kinetics_dirs(label: str) -> list[str]:
    """Class folder spellings in use: with '_' for ' ', TSM's (no quotes or parentheses either),
    and the label itself (official downloader; a path with a space is reported, not listed)."""
    tsm = label.replace(' ', '_').replace('"', '').replace('(', '').replace(')', '').replace("'", '')
    return list(dict.fromkeys([label.replace(' ', '_'), tsm, label]))


def kinetics(args):
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
        lists[f'{out}_videofolder.txt'] = entries
    return names, lists


BREAKFAST_NESTED = re.compile(r'(?:.*/)?P(\d+)/([^/]+)/P\d+_([a-z]+?)(?:_ch\d)?')  # P03/cam01/P03_cereals
BREAKFAST_FLAT = re.compile(r'(?:.*/)?P(\d+)_([a-z]+\d*)_P\d+_([a-z]+?)(?:_ch\d)?')  # P03_cam01_P03_cereals


def breakfast(args):
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
    return list(BREAKFAST_ACTIVITIES), {f'breakfast_rgb_train_split_{args.split}.txt': train,
                                        f'breakfast_rgb_val_split_{args.split}.txt': test}


def _count_folder(rel: str, root: str, template: str, start_index: int) -> tuple[int, str | None]:
    return frame_count(os.path.join(root, rel), template, start_index)


def _count_video(rel: str, root: str) -> tuple[str, int, str | None]:
    try:
        return rel, video_io.count_frames(os.path.join(root, rel)), None
    except (video_io.VideoDecodeError, OSError) as e:
        return rel, 0, f'undecodable: {e}'


def custom(args):
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
    outputs = {'custom_train.txt': [v for v in videos if v[0] not in val],
               'custom_val.txt': [v for v in videos if v[0] in val]} if val else {'custom_list.txt': videos}
    return names, {out: [([rel], label) for rel, label in vs] for out, vs in outputs.items()}


def count_videos(root: str, rels: list[str], jobs: int) -> dict[str, tuple[int, str | None]]:
    """Frames of each video file by decoding (ops.video_io.count_frames), with `jobs` processes."""
    work = partial(_count_video, root=root)
    if jobs > 1:
        with Pool(jobs) as pool:
            results = pool.map(work, rels, chunksize=1)
    else:
        results = map(work, rels)
    return {rel: (n, err) for rel, n, err in results}


DATASETS = {f.__name__: f for f in (ucf101, hmdb51, something, somethingv2, kinetics, breakfast, custom)}
CLASS_FORMAT = {'something': 'category', 'somethingv2': 'category', 'kinetics': 'category'}
HELP = {'ucf101': 'UCF101: ucfTrainTestlist/ classInd.txt, trainlist0K.txt, testlist0K.txt',
        'hmdb51': 'HMDB51: testTrainMulti_7030_splits/ <class>_test_splitK.txt',
        'something': 'Something-Something v1: something-something-v1-{labels,train,validation}.csv',
        'somethingv2': 'Something-Something v2: something-something-v2-{labels,train,validation}.json',
        'kinetics': 'Kinetics: CSVs label,youtube_id,time_start,time_end,split',
        'breakfast': 'Breakfast: person and activity from the folder names, split by person',
        'custom': 'a <class>/<video> tree of frame folders, or of video files with --video'}


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--frame_root', '--root', required=True,
                        help='folder holding the frame folders (custom --video: the video files)')
    common.add_argument('--out_dir', default=None, help='where the lists and class list go (default --frame_root)')
    common.add_argument('--template', default=None,
                        help='frame file names counted (default img_{:05d}.jpg; something {:05d}.jpg, '
                             'somethingv2 {:06d}.jpg)')
    common.add_argument('--start_index', type=int, default=1, help='number of the first frame file (default 1)')
    common.add_argument('--class_format', choices=('classind', 'category'), default=None,
                        help='classInd.txt "1 name" or category.txt "name" lines (default per data set)')
    common.add_argument('--strict', action='store_true', help='exit 1 when any video is skipped')
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='dataset', required=True)
    for name, func in DATASETS.items():
        s = sub.add_parser(name, parents=[common], help=HELP[name], description=func.__doc__)
        if name not in ('breakfast', 'custom'):
            s.add_argument('--ann_dir', required=name != 'kinetics', default='.',
                           help='folder holding the official annotation files')
        if name in ('ucf101', 'hmdb51', 'breakfast'):
            s.add_argument('--split', type=int, default=1, choices=range(1, 5 if name == 'breakfast' else 4))
    k = sub.choices['kinetics']
    k.add_argument('--train_csv', default=None, help='train CSV, if not in --ann_dir')
    k.add_argument('--val_csv', default=None, help='validation CSV, if not in --ann_dir')
    c = sub.choices['custom']
    c.add_argument('--video', action='store_true',
                   help='list video files (path with extension), frames counted by decoding: no extraction')
    c.add_argument('--val_fraction', type=float, default=0.0,
                   help='put this fraction of each class in custom_val.txt (default 0: one custom_list.txt)')
    c.add_argument('--seed', type=int, default=0, help='seed of the train/val draw')
    c.add_argument('-j', '--jobs', type=int, default=1, help='processes counting frames with --video')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    template = args.template or DEFAULT_TEMPLATE.get(args.dataset, 'img_{:05d}.jpg')
    try:
        split_template(template)
        if not os.path.isdir(args.frame_root):
            raise AnnotationError(f'{args.frame_root}: --frame_root is not a folder')
        args.out_dir = args.out_dir or args.frame_root
        os.makedirs(args.out_dir, exist_ok=True)
        names, lists = DATASETS[args.dataset](args)
    except (AnnotationError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    write_classes(args.out_dir, names, args.class_format or CLASS_FORMAT.get(args.dataset, 'classind'))
    if getattr(args, 'video', False):
        counts = count_videos(args.frame_root, [c[0] for es in lists.values() for c, _ in es], args.jobs)
        count = counts.__getitem__
    else:
        count = partial(_count_folder, root=args.frame_root, template=template, start_index=args.start_index)
    status = 0
    for out, entries in lists.items():
        written, skipped = write_list(os.path.join(args.out_dir, out), entries, args.frame_root, count)
        if entries and not written:
            print(f'error: no usable video for {out}: check --frame_root and --template', file=sys.stderr)
            status = 1
        elif skipped and args.strict:
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
