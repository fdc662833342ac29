"""Data set names -> classes, list files, frame root, file name template and start index: the one table of
data-set facts, read by training (``return_dataset``) and by tools/gen_lists.py, which writes the lists and
the class file named here.

No machine paths: the default root of data set ``name`` is ``data/<name>`` (relative to the
working directory) and list and class files are relative to the root unless absolute. Every
default can be overridden (``--root_path``, ``--train_list``, ``--val_list``, ``--image_tmpl``,
``--start_index``). The class count comes from the class file in the root when there is one,
else from the data set's known count.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ALIASES = {'movingmnist': 'move4mnist'}  # the name in the paper authors' published command


@dataclass
class DatasetConfig:
    """Everything ``VideoDataset`` and the model need to know about a data set."""
    name: str
    num_class: int
    classes: list[str] | None
    root_path: str
    train_list: str
    val_list: str
    image_tmpl: str
    start_index: int
    video_source: str = 'frames'   # 'frames' (image folders) or 'video' (video files)
    direction_sensitive: bool = False  # left/right matters: no horizontal flip in training


@dataclass(frozen=True)
class _Spec:
    num_class: int | None
    rgb_tmpl: str
    flow_tmpl: str | None
    start_index: int
    lists: tuple[str, str]                 # (train, val), for RGB and Flow alike; {split}: the official split
    class_file: str | None                 # a name of CLASS_FILES
    direction_sensitive: bool = False
    splits: int = 1                        # official train/val splits (tools/gen_lists.py --split)


_VIDEOFOLDER = ('train_videofolder.txt', 'val_videofolder.txt')


def _split_lists(name: str, kind: str) -> tuple[str, str]:
    return f'{name}_{kind}_train_split_{{split}}.txt', f'{name}_{kind}_val_split_{{split}}.txt'


# Templates and start indices follow TSM. Flow is TSM's x/y image pairs; for Something v1 TSM's
# '{:06d}-{}_{:05d}.jpg' layout (a differently named folder) is replaced by the common x/y template.
# Flow pair k (frames k, k+1) lies beside frame k, numbered as the frames (tools/extract_flow.py), and
# Flow reads the RGB lists: their num_frames counts the frames, N frames give N - 1 pairs (ops/dataset.py).
SPECS: dict[str, _Spec] = {
    'ucf101': _Spec(101, 'img_{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, _split_lists('ucf101', 'rgb'),
                    'classInd.txt', splits=3),
    'hmdb51': _Spec(51, 'img_{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, _split_lists('hmdb51', 'rgb'),
                    'classInd.txt', splits=3),
    'something': _Spec(174, '{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, _VIDEOFOLDER,
                       'category.txt', direction_sensitive=True),
    'somethingv2': _Spec(174, '{:06d}.jpg', 'flow_{}_{:06d}.jpg', 1, _VIDEOFOLDER,
                         'category.txt', direction_sensitive=True),
    'jester': _Spec(27, '{:05d}.jpg', None, 1, _VIDEOFOLDER, 'category.txt', direction_sensitive=True),
    'kinetics': _Spec(400, 'img_{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, _VIDEOFOLDER,
                      'category.txt'),
    'breakfast': _Spec(10, 'img_{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, _split_lists('breakfast', 'rgb'),
                       'classInd.txt', splits=4),
    'move4mnist': _Spec(4, '{}.jpg', 'flow_{}_{:05d}.jpg', 0, _VIDEOFOLDER, 'classInd.txt', direction_sensitive=True),
    # custom: the names tools/gen_lists.py writes; meant to be set by the flags
    'custom': _Spec(None, 'img_{:05d}.jpg', 'flow_{}_{:05d}.jpg', 1, ('custom_train.txt', 'custom_val.txt'),
                    'classInd.txt'),
}
CUSTOM_ONE_LIST = 'custom_list.txt'  # tools/gen_lists.py custom without a validation share: every video
CLASS_FILES = {'classind': 'classInd.txt', 'category': 'category.txt'}  # format -> file name; custom looks for both


def list_files(dataset: str, split: int = 1) -> tuple[str, str]:
    """The (train, val) list file names of ``dataset`` (a name of ``SPECS``), for its official ``split``
    (UCF101, HMDB51 and Breakfast have several; the others one, which ``split`` does not change)."""
    return tuple(name.format(split=split) for name in SPECS[dataset].lists)


def class_file_format(dataset: str) -> str:
    """The format of ``dataset``'s class file: a key of ``CLASS_FILES``."""
    return next(fmt for fmt, file in CLASS_FILES.items() if file == SPECS[dataset].class_file)


def write_class_file(folder: str, names: list[str], fmt: str) -> str:
    """Write ``names`` (in label order) as ``classInd.txt`` (``1 name`` lines: 1-based ids, as UCF101's own file)
    or ``category.txt`` (one name a line, as TSM's), in ``folder``; return the file's path."""
    path = os.path.join(folder, CLASS_FILES[fmt])
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(f'{i + 1} {name}\n' if fmt == 'classind' else f'{name}\n' for i, name in enumerate(names))
    return path


def read_class_file(path: str) -> list[str]:
    """Class names in label order from ``classInd.txt`` (``1 left``) or ``category.txt`` (one name a line).

    When every line starts with an integer id and the ids run consecutively (from 0 or 1) the
    names are ordered by id; otherwise each whole line is a name, in file order.
    """
    with open(path, encoding='utf-8') as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError(f'{path}: empty class file')
    parts = [line.split(maxsplit=1) for line in lines]
    if all(len(p) == 2 and p[0].lstrip('-').isdigit() for p in parts):
        ids = [int(p[0]) for p in parts]
        first = min(ids)
        if first in (0, 1) and sorted(ids) == list(range(first, first + len(ids))):
            return [name for _, name in sorted(zip(ids, (p[1] for p in parts)))]
    return lines


def _in_root(root: str, path: str) -> str:
    """``path`` relative to ``root`` unless absolute."""
    return os.path.join(root, path)


def _find_class_file(root: str, spec: _Spec, name: str) -> str | None:
    candidates = (spec.class_file,) + (tuple(CLASS_FILES.values()) if name == 'custom' else ())
    for candidate in candidates:
        if candidate and os.path.isfile(_in_root(root, candidate)):
            return _in_root(root, candidate)
    return None


def return_dataset(dataset: str, modality: str, root_path: str | None = None, train_list: str | None = None,
                   val_list: str | None = None, image_tmpl: str | None = None, start_index: int | None = None,
                   num_class: int | None = None, video_source: str | None = None) -> DatasetConfig:
    """The configuration of ``dataset`` for ``modality`` ('RGB' or 'Flow'), with overrides applied.

    Args:
        dataset: a name of ``SPECS`` or an alias (``movingmnist``); ``custom`` is meant to take
            everything from the arguments (its lists default to gen_lists' ``custom_{train,val}.txt``).
        root_path: frame root (default ``data/<name>``).
        train_list, val_list: list files, relative to the root unless absolute.
        image_tmpl, start_index: frame file name template and number of the first frame.
        num_class: class count when the root holds no class file (a ``custom`` set without a
            class file needs it, or its training list's largest label + 1 is taken).
        video_source: 'frames' (default) or 'video'.

    Raises:
        ValueError: unknown data set or modality, no template for the modality, a class file
            that disagrees with ``num_class``.
    """
    name = ALIASES.get(dataset, dataset)
    if name not in SPECS:
        raise ValueError(f'unknown data set {dataset!r}; known: {", ".join(sorted(SPECS) + sorted(ALIASES))}')
    if modality not in ('RGB', 'Flow'):
        raise ValueError(f"modality must be 'RGB' or 'Flow', got {modality!r}")
    spec = SPECS[name]
    root = root_path or os.path.join('data', name)
    default_tmpl = spec.rgb_tmpl if modality == 'RGB' else spec.flow_tmpl
    if image_tmpl is None and default_tmpl is None:
        raise ValueError(f'{name} has no {modality} frames by default; give --image_tmpl')
    default_train, default_val = list_files(name)
    train = _in_root(root, train_list or default_train)
    val = _in_root(root, val_list or default_val)
    source = video_source or 'frames'
    if source not in ('frames', 'video'):
        raise ValueError(f"video_source must be 'frames' or 'video', got {source!r}")
    classes, n_class = _classes(name, spec, root, num_class, train, source)
    return DatasetConfig(name=name, num_class=n_class, classes=classes, root_path=root, train_list=train,
                         val_list=val, image_tmpl=image_tmpl if image_tmpl is not None else default_tmpl,
                         start_index=start_index if start_index is not None else spec.start_index,
                         video_source=source, direction_sensitive=spec.direction_sensitive)


def _classes(name: str, spec: _Spec, root: str, num_class: int | None, train_list: str,
             source: str) -> tuple[list[str] | None, int]:
    """Class names (or None) and count: class file, else ``num_class``, else the known count."""
    class_file = _find_class_file(root, spec, name)
    if class_file is not None:
        classes = read_class_file(class_file)
        if num_class is not None and num_class != len(classes):
            raise ValueError(f'{class_file} lists {len(classes)} classes but num_class={num_class} was given')
        return classes, len(classes)
    if num_class is not None:
        return None, num_class
    if spec.num_class is not None:
        return None, spec.num_class
    from ops.video_list import parse_list  # custom without a class file: largest training label + 1
    records = parse_list(train_list, root, None, source)
    return None, max(max(r.labels) for r in records) + 1
