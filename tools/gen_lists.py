"""Write TSM-style list files (`path num_frames label`) and the class list of a data set.

One tool for what TSM's `tools/gen_label_*.py` did per data set. It reads the official annotation
files (tools/annotations.py) and the frame folders that `tools/vid2img.py` extracted, and writes into
--out_dir (default: --frame_root, where training looks for them) the lists and the class file that
ops/dataset_config.py names for the data set (`list_files`, `SPECS`):

  ucf101, hmdb51, breakfast   <name>_rgb_{train,val}_split_{K}.txt       classInd.txt
  something, somethingv2,     train_videofolder.txt, val_videofolder.txt  category.txt
  kinetics
  custom                      custom_list.txt, or custom_{train,val}.txt  classInd.txt

`classInd.txt` holds `1 name` lines (1-based ids, as UCF101's own file; list labels are 0-based);
`category.txt` holds one name per line, line i (0-based) naming label i, as TSM's. --class_format
picks the other. Paths are relative to --frame_root; num_frames is the number of files in the folder
that match --template, which must be numbered --start_index, --start_index+1, ... without a gap
(both default to the data set's RGB frames in ops/dataset_config.py).
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
import os
import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from multiprocessing import Pool

from ops import video_io
from ops.dataset_config import CLASS_FILES, CUSTOM_ONE_LIST, SPECS, class_file_format, list_files, write_class_file
from tools.annotations import HELP, READERS, AnnotationError
from tools.vid2img import split_template


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


def _count_folder(rel: str, root: str, template: str, start_index: int) -> tuple[int, str | None]:
    return frame_count(os.path.join(root, rel), template, start_index)


def _count_video(rel: str, root: str) -> tuple[str, int, str | None]:
    try:
        return rel, video_io.count_frames(os.path.join(root, rel)), None
    except (video_io.VideoDecodeError, OSError) as e:
        return rel, 0, f'undecodable: {e}'


def count_videos(root: str, rels: list[str], jobs: int) -> dict[str, tuple[int, str | None]]:
    """Frames of each video file by decoding (ops.video_io.count_frames), with `jobs` processes."""
    work = partial(_count_video, root=root)
    if jobs > 1:
        with Pool(jobs) as pool:
            results = pool.map(work, rels, chunksize=1)
    else:
        results = map(work, rels)
    return {rel: (n, err) for rel, n, err in results}


def parse_args(argv=None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--frame_root', '--root', required=True,
                        help='folder holding the frame folders (custom --video: the video files)')
    common.add_argument('--out_dir', default=None, help='where the lists and class list go (default --frame_root)')
    common.add_argument('--template', default=None,
                        help="frame file names counted (default: the data set's RGB template in ops/dataset_config.py: "
                             "img_{:05d}.jpg; something {:05d}.jpg, somethingv2 {:06d}.jpg)")
    common.add_argument('--start_index', type=int, default=None,
                        help="number of the first frame file (default: the data set's in ops/dataset_config.py, 1)")
    common.add_argument('--class_format', choices=tuple(CLASS_FILES), default=None,
                        help='classInd.txt "1 name" or category.txt "name" lines (default per data set)')
    common.add_argument('--strict', action='store_true', help='exit 1 when any video is skipped')
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='dataset', required=True)
    for name, func in READERS.items():
        s = sub.add_parser(name, parents=[common], help=HELP[name], description=func.__doc__)
        if name not in ('breakfast', 'custom'):
            s.add_argument('--ann_dir', required=name != 'kinetics', default='.',
                           help='folder holding the official annotation files')
        if SPECS[name].splits > 1:
            s.add_argument('--split', type=int, default=1, choices=range(1, SPECS[name].splits + 1))
    k = sub.choices['kinetics']
    k.add_argument('--train_csv', default=None, help='train CSV, if not in --ann_dir')
    k.add_argument('--val_csv', default=None, help='validation CSV, if not in --ann_dir')
    c = sub.choices['custom']
    c.add_argument('--video', action='store_true',
                   help='list video files (path with extension), frames counted by decoding: no extraction')
    c.add_argument('--val_fraction', type=float, default=0.0,
                   help=f'put this fraction of each class in {list_files("custom")[1]} '
                        f'(default 0: one {CUSTOM_ONE_LIST})')
    c.add_argument('--seed', type=int, default=0, help='seed of the train/val draw')
    c.add_argument('-j', '--jobs', type=int, default=1, help='processes counting frames with --video')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = SPECS[args.dataset]
    template = args.template or spec.rgb_tmpl
    start_index = spec.start_index if args.start_index is None else args.start_index
    try:
        split_template(template)
        if not os.path.isdir(args.frame_root):
            raise AnnotationError(f'{args.frame_root}: --frame_root is not a folder')
        args.out_dir = args.out_dir or args.frame_root
        os.makedirs(args.out_dir, exist_ok=True)
        names, lists = READERS[args.dataset](args)
    except (AnnotationError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    path = write_class_file(args.out_dir, names, args.class_format or class_file_format(args.dataset))
    print(f'{path}: {len(names)} classes')
    train_list, val_list = list_files(args.dataset, getattr(args, 'split', 1))
    list_names = {'train': train_list, 'val': val_list, 'all': CUSTOM_ONE_LIST}
    if getattr(args, 'video', False):
        counts = count_videos(args.frame_root, [c[0] for es in lists.values() for c, _ in es], args.jobs)
        count = counts.__getitem__
    else:
        count = partial(_count_folder, root=args.frame_root, template=template, start_index=start_index)
    status = 0
    for role, entries in lists.items():
        out = list_names[role]
        written, skipped = write_list(os.path.join(args.out_dir, out), entries, args.frame_root, count)
        if entries and not written:
            print(f'error: no usable video for {out}: check --frame_root and --template', file=sys.stderr)
            status = 1
        elif skipped and args.strict:
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
