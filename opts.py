"""Command-line flags in three sections: TSM's flags (names and meanings as TSM's ``opts.py``), the paper's
flags (full-video clustering), and run time (device, data paths, checkpoints). ``builder.py`` turns them into
things (docs/DESIGN.md §2)."""
import argparse
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from archs import arch_names, backbone_layout, backbone_option_defaults, backbone_option_names
from archs.video_torchvision import VIDEO_MODELS
from archs.base import stage_number
from ops.clustering import rule_names
from ops.multigrid import long_cycle_shapes
from ops.transforms import default_scale_size

# The settings that decide the model a checkpoint holds and the input it was trained on: evaluation
# (``main.py --evaluate --resume``, ``tools/test_models.py``) takes them from the checkpoint's ``args``.
MODEL_KEYS = ('modality', 'arch', 'num_segments', 'consensus_type', 'shift', 'shift_div', 'shift_place',
              'temporal_pool', 'non_local', 'cluster', 'frames', 'cluster_after', 'dense_sample', 'img_size',
              'scale_size', 'sample_rate', 'new_length', 'slowfast_alpha', 'slowfast_slow_frames')

# F, the frames per video entering the stem when clustering, unless --frames says otherwise.
DEFAULT_FRAMES = 32

# Backbones whose input shape is fixed (C3D's fc6 takes a 16x112x112 clip's 8192 values): no --multigrid.
FIXED_INPUT_ARCHS = ('c3d',)

# TSM's flags that nothing here reads, kept so that TSM's command lines run: dest -> default. Giving one a
# value other than its default prints a warning (``warn_ignored``).
IGNORED = {'k': 3, 'loss_type': 'nll', 'img_feature_dim': 256, 'snapshot_pref': '', 'flow_prefix': '',
           'gpus': None}


def _checked(kind: str, test: Callable[[float], bool], cast: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse ``type=``: ``cast`` the text, then refuse it unless ``test`` holds (argparse exits with
    status 2 and names the flag: ``argument --eval-freq: invalid value '0': expected an integer >= 1``)."""
    def convert(value: str) -> Any:
        try:
            number = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {value!r}: expected {kind}") from None
        if number != number or not test(number):  # NaN fails every test
            raise argparse.ArgumentTypeError(f"invalid value {value!r}: expected {kind}")
        return number
    convert.__name__ = kind  # argparse names the type in some messages
    return convert


positive_int = _checked('an integer >= 1', lambda v: v >= 1)
nonneg_int = _checked('an integer >= 0', lambda v: v >= 0)
nonneg_float = _checked('a finite number >= 0', lambda v: 0 <= v < float('inf'), float)
positive_float = _checked('a finite number > 0', lambda v: 0 < v < float('inf'), float)
fraction = _checked('a number in [0, 1)', lambda v: 0 <= v < 1, float)


def frames_type(value: str) -> Union[int, str]:
    """``--frames``: a positive integer or the word ``all``."""
    if value == 'all':
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frames {value!r}: expected a positive integer or 'all'")
    if n <= 0:
        raise argparse.ArgumentTypeError(f"--frames {value!r}: expected a positive integer or 'all'")
    return n


def add_ignored(parser: argparse.ArgumentParser, *names: str, note: str = '', **kwargs: Any) -> None:
    """A TSM flag kept for its command lines only: its help says it is ignored (``IGNORED`` holds the default)."""
    dest = names[0].lstrip('-').replace('-', '_')
    parser.add_argument(*names, default=IGNORED[dest], help="ignored (kept for TSM's command lines)" + note,
                        **kwargs)


def warn_ignored(args: argparse.Namespace) -> None:
    """Warn about each ignored TSM flag (``IGNORED``) given a value other than its default."""
    for dest, default in IGNORED.items():
        value = getattr(args, dest, default)
        if value != default:
            print(f"warning: {flag_name(dest)} {value!r} is ignored (kept for TSM's command lines only)",
                  file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The parser shared by ``main.py`` and the tools, so a tool builds exactly the model a run trains."""
    parser = argparse.ArgumentParser(description="TSM with full-video temporal clustering (Liu et al., CVPR 2021)")
    # ========================= TSM's flags: data set and run name ==========================
    parser.add_argument('dataset', type=str, help="ucf101, hmdb51, something, somethingv2, kinetics, breakfast, "
                        "move4mnist (alias movingmnist) or custom")
    parser.add_argument('modality', type=str, choices=['RGB', 'Flow'])
    parser.add_argument('--train_list', type=str, default=None, help="overrides the data set's training list")
    parser.add_argument('--val_list', type=str, default=None, help="overrides the data set's validation list")
    parser.add_argument('--root_path', type=str, default=None, help="overrides the data set's frame root")
    parser.add_argument('--store_name', type=str, default="", help="run name (default: built from the settings)")

    # ========================= TSM's flags: model ==========================
    parser.add_argument('--arch', type=str, default="resnet50", choices=arch_names(),
                        help="the backbone (archs/__init__.py's registry)")
    parser.add_argument('--num_segments', type=positive_int, default=8,
                        help="frames sampled per video (cluster none) or clusters G (clustering)")
    parser.add_argument('--slowfast_alpha', type=int, default=None, choices=[4, 8],
                        help="--arch slowfast_r50: the Slow pathway takes every alpha-th of the --num_segments "
                             "(Fast) frames; 4 (8x8, the default) or 8 (4x16)")
    parser.add_argument('--slowfast_slow_frames', default=None, choices=['stride', 'linspace'],
                        help="--arch slowfast_r50: the Slow pathway's frames: every alpha-th (stride, the default) "
                             "or PySlowFast's evenly spaced T/alpha (linspace, the protocol of its checkpoints)")
    parser.add_argument('--consensus_type', type=str, default='avg', choices=['avg', 'identity'])
    add_ignored(parser, '--k', type=int)
    parser.add_argument('--dropout', '--do', default=0.5, type=fraction, metavar='DO')
    add_ignored(parser, '--loss_type', type=str, choices=['nll'])
    add_ignored(parser, '--img_feature_dim', type=int)
    parser.add_argument('--suffix', type=str, default=None, help="appended to the run name")
    parser.add_argument('--pretrain', type=str, default='imagenet', choices=['imagenet', 'scratch', 'kinetics400'],
                        help="imagenet: torchvision's ImageNet weights (2D backbones; i3d_resnet50 inflates them); "
                             "kinetics400: torchvision's Kinetics-400 weights of its video models "
                             f"({', '.join(VIDEO_MODELS)}); scratch: random")
    parser.add_argument('--tune_from', type=str, default=None, help='fine-tune from local weights')
    parser.add_argument('--fc_lr5', default='auto', choices=['auto', 'on', 'off'],
                        help="the new classifier learns at lr x5 (bias x10), as TSM's fc_lr5 (TSM passes "
                             "fc_lr5=not (tune_from and dataset in tune_from)). auto: on when the weights come "
                             "from another task (--pretrain imagenet, or --tune_from a checkpoint whose stored "
                             "args name another data set or none), off from scratch or when tuning from a "
                             "checkpoint of the same data set")

    # ========================= TSM's flags: learning ==========================
    parser.add_argument('--epochs', default=120, type=nonneg_int, metavar='N')
    parser.add_argument('-b', '--batch-size', default=256, type=positive_int, metavar='N', help='mini-batch size')
    parser.add_argument('--lr', '--learning-rate', default=0.001, type=nonneg_float, metavar='LR')
    parser.add_argument('--lr_type', default='step', type=str, choices=['step', 'cos'], metavar='LRtype')
    parser.add_argument('--lr_steps', default=[20, 40], type=nonneg_float, nargs="+", metavar='LRSteps',
                        help='epochs at which the learning rate is divided by 10')
    parser.add_argument('--multigrid', default=None, choices=['long', 'short', 'long,short'],
                        help="multigrid training (Wu et al. 2020; ops/multigrid.py): long: phases of (batch x8, frames "
                             "/4, size /sqrt2) ... (x1, T, S) over the epochs of each learning-rate stage, the rate "
                             "scaled with the batch; short: each iteration's size S/2, S/sqrt2, S with batch x4, x2, "
                             "x1. Frames are --num_segments without clustering, --frames F with it (G stays)")
    parser.add_argument('--multigrid_lr', default='linear', choices=['linear', 'sqrt', 'none'],
                        help="--multigrid's learning rate against the long cycle's batch multiple b: linear (x b, the "
                             "paper's, for SGD), sqrt (x b**0.5, for AdamW), none")
    parser.add_argument('--multigrid_bn', default='batch', choices=['batch', 'sub'],
                        help="--multigrid's BatchNorm statistics: over the whole mini-batch (batch, the default, as "
                             "earlier runs), or over sub-batches of the base -b clips (sub: PySlowFast's sub-batch BN, "
                             "the clips per BatchNorm constant while the long and short cycles enlarge the batch)")
    parser.add_argument('--optimizer', default='sgd', choices=['sgd', 'adamw'],
                        help="sgd as TSM (default); adamw trains from scratch faster (--lr 1e-3, --wd 0.05)")
    parser.add_argument('--warmup_epochs', default=0, type=nonneg_float,
                        help="linear learning-rate warm-up over the first N epochs, raised every step (0: none)")
    parser.add_argument('--zero_init_residual', default=False, action='store_true',
                        help="from scratch: the last BatchNorm of each residual block starts at zero")
    parser.add_argument('--momentum', default=0.9, type=nonneg_float, metavar='M')
    parser.add_argument('--weight-decay', '--wd', default=5e-4, type=nonneg_float, metavar='W')
    parser.add_argument('--clip-gradient', '--gd', default=20, type=nonneg_float, metavar='W',
                        help='gradient norm clipping (0 = off)')
    parser.add_argument('--no_partialbn', '--npb', default=False, action="store_true")

    # ========================= TSM's flags: monitoring ==========================
    parser.add_argument('--print-freq', '-p', default=20, type=positive_int, metavar='N')
    parser.add_argument('--eval-freq', '-ef', default=5, type=positive_int, metavar='N')

    # ========================= TSM's flags: run time ==========================
    parser.add_argument('-j', '--workers', default=8, type=nonneg_int, metavar='N', help='data loading workers')
    parser.add_argument('--resume', default='', type=str, metavar='PATH',
                        help="checkpoint to resume from; 'auto': this run's own {root_model}/{store_name}/"
                             "ckpt.pth.tar if it exists, else a fresh start (elastic restarts: torchrun "
                             "--max_restarts)")
    parser.add_argument('-e', '--evaluate', dest='evaluate', action='store_true',
                        help='evaluate the model on the validation set and exit')
    add_ignored(parser, '--snapshot_pref', type=str)
    parser.add_argument('--start-epoch', default=0, type=nonneg_int, metavar='N',
                        help='first epoch (overridden by --resume)')
    add_ignored(parser, '--gpus', nargs='+', type=int, note='; see --device and torchrun')
    add_ignored(parser, '--flow_prefix', type=str)
    parser.add_argument('--root_log', type=str, default='log')
    parser.add_argument('--root_model', type=str, default='checkpoint')

    # ========================= TSM's flags: temporal shift and sampling ==========================
    parser.add_argument('--shift', default=False, action="store_true", help='use temporal shift')
    parser.add_argument('--shift_div', default=8, type=positive_int, help='number of div for shift (default: 8)')
    parser.add_argument('--shift_place', default='blockres', type=str, choices=['blockres', 'block'])
    parser.add_argument('--temporal_pool', default=False, action="store_true")
    parser.add_argument('--non_local', default=False, action="store_true", help="not supported")
    parser.add_argument('--dense_sample', default=False, action="store_true", help='dense sampling (I3D)')
    parser.add_argument('--twice_sample', default=False, action="store_true", help='test: two clips offset by half a segment')
    parser.add_argument('--new_length', default=None, type=positive_int, metavar='K',
                        help="consecutive frames per sampled position, stacked into the first convolution of a 2D "
                             "backbone (TSN's; default 1 for RGB, 5 for Flow). RGB with K > 1 is Karpathy et al.'s "
                             "early fusion: 3K input channels, the ImageNet kernel spread over the K frames (w / K)")
    parser.add_argument('--sample_rate', default=None, type=positive_int, metavar='TAU',
                        help="clip backbones (3D CNNs) with --cluster none: the stride between the --num_segments "
                             "T consecutive frames of the clip (T x tau of PySlowFast and mmaction2; default 1). "
                             "Training takes one clip at a random place, validation the centre clip. Refused for "
                             "2D backbones (TSN segments) and with --cluster (every frame)")

    # ========================= The paper's flags: full-video clustering ==========================
    parser.add_argument('--cluster', default='none', choices=['none', *rule_names()],
                        help="temporal clustering after --cluster_after (paper Sec. 3.3), by the rules registered "
                             "in ops/clustering.py; none = TSM sampling")
    parser.add_argument('--frames', default=None, type=frames_type,
                        help="frames per video entering the stem when clustering: an integer F or 'all' "
                             f"(default {DEFAULT_FRAMES})")
    parser.add_argument('--cluster_after', default=1, type=stage_number, metavar='STAGE',
                        help="the stage the clustering follows: 1 = the first (the paper's); a number below the "
                             "backbone's stage count; ResNet's names layer1-layer3 are taken too")
    parser.add_argument('--chunk_frames', default=0, type=nonneg_int,
                        help="run the layers before clustering in chunks of K frames with recomputation; "
                             "training also needs --freeze_early_bn (exact only with frozen BatchNorm statistics)")
    parser.add_argument('--freeze_early_bn', default=False, action='store_true',
                        help="in training, the BatchNorm layers up to the clustering point (the stem's too) use "
                             "their running statistics, which stay as loaded; their scale and shift still learn")
    parser.add_argument('--fused_assign', default='auto', choices=['auto', 'on', 'off'],
                        help="torch.compile the clustering: the sign Hamming distances in one pass over the "
                             "activations, the rule and the mean weights (same values; the first step compiles; "
                             "not used with --chunk_frames); auto: on for CUDA activations when Triton is "
                             "installed, off on the CPU")
    parser.add_argument('--online', default=False, action='store_true',
                        help="online TSM: uni-directional shift (past to future only), so that tools/demo.py "
                             "--online runs the model frame by frame; needs --shift and --cluster none")

    # ========================= Run time (ours): sizes, device, precision, data, saving ==========================
    parser.add_argument('--img_size', default=None, type=positive_int,
                        help="crop size (default: the backbone's training crop: 224 for the 2D networks, 112 for "
                             "r3d_18/mc3_18/r2plus1d_18/c3d, X3D's 160/160/224/312, SlowFast 224)")
    parser.add_argument('--scale_size', default=None, type=positive_int,
                        help="test-time short side (default img_size*256/224)")
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--seed', default=0, type=nonneg_int)
    parser.add_argument('--amp', default='none', choices=['none', 'fp16', 'bf16'], help="mixed precision")
    parser.add_argument('--channels_last', default=False, action='store_true', help="channels-last memory layout")
    parser.add_argument('--image_tmpl', default=None, type=str, help="frame file name template, e.g. 'img_{:05d}.jpg'")
    parser.add_argument('--start_index', default=None, type=nonneg_int, help="number of the first frame file")
    parser.add_argument('--video_source', default=None, choices=['frames', 'video'],
                        help="read frame folders or decode video files (default: the data set's)")
    parser.add_argument('--on_bad_video', default='error', choices=['error', 'skip'])
    parser.add_argument('--sync_bn', default=False, action='store_true', help="SyncBatchNorm under torchrun")
    parser.add_argument('--save_freq', default=0, type=nonneg_int,
                        help="also checkpoint every N iterations inside an epoch (0: at epoch ends only)")
    parser.add_argument('--override_model_args', default=False, action='store_true',
                        help="--evaluate --resume: model flags given on the command line win over the "
                             "checkpoint's stored ones (an ablation, e.g. a cumulative model with uniform clusters)")
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and complete the arguments (defaults that depend on other flags); contradictions exit with 2."""
    parser = build_parser()
    args = complete_args(parser.parse_args(argv), parser)
    warn_ignored(args)
    return args


def complete_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Fill the defaults that depend on other flags and refuse combinations that cannot work."""
    if args.cluster != 'none' and args.frames is None:
        args.frames = DEFAULT_FRAMES
    if args.cluster == 'none' and args.frames is not None:
        parser.error(f"--frames only applies with --cluster {'|'.join(rule_names())}")
    if args.online and (not args.shift or args.cluster != 'none' or args.temporal_pool):
        parser.error("--online needs --shift and --cluster none, without --temporal_pool")
    if args.img_size is None:
        args.img_size = backbone_layout(args.arch).input_size
    if args.scale_size is None:
        args.scale_size = default_scale_size(args.img_size)
    check_clip_flags(args, parser)
    check_multigrid(args, parser)
    if args.slowfast_alpha is not None and 'alpha' not in backbone_option_names(args.arch):
        parser.error(f"--slowfast_alpha only applies with --arch slowfast_r50 (not {args.arch})")
    if args.slowfast_slow_frames is not None and 'slow_frames' not in backbone_option_names(args.arch):
        parser.error(f"--slowfast_slow_frames only applies with --arch slowfast_r50 (not {args.arch})")
    alpha = slowfast_alpha(args)
    if args.slowfast_slow_frames == 'linspace' and args.cluster == 'none' and args.num_segments % alpha:
        parser.error(f"--slowfast_slow_frames linspace takes --num_segments / alpha Slow frames: --num_segments "
                     f"{args.num_segments} is not a multiple of alpha {alpha}")
    problem = cluster_problem(args.cluster, args.num_segments, args.frames)
    if problem:
        parser.error(problem)
    if args.shift and args.shift_div > 64:
        parser.error(f"--shift_div {args.shift_div}: at most 64 (a block of 64 channels would shift none)")
    if args.chunk_frames and args.cluster == 'none':
        parser.error(f"--chunk_frames only applies with --cluster {'|'.join(rule_names())}")
    if args.freeze_early_bn and args.cluster == 'none':
        parser.error(f"--freeze_early_bn only applies with --cluster {'|'.join(rule_names())} (the layers before "
                     "the clustering point)")
    if args.fused_assign == 'on' and args.chunk_frames and args.cluster != 'none':
        print("note: --fused_assign on does not apply with --chunk_frames (the chunked path computes its distances "
              "from packed sign codes, and its rule and mean weights, eagerly)")
    return args


def check_clip_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``--sample_rate`` (default 1 for a clip backbone with ``--cluster none``), ``--pretrain kinetics400`` and
    ``--dense_sample`` against ``--arch``: a flag that would do nothing, or two that say the same, is an error."""
    if args.pretrain == 'kinetics400' and args.arch not in VIDEO_MODELS:
        parser.error(f"--pretrain kinetics400: torchvision has Kinetics-400 weights for {', '.join(VIDEO_MODELS)}, "
                     f"not for --arch {args.arch}")
    clip = backbone_layout(args.arch).clip
    if not clip:
        if args.sample_rate is not None:
            parser.error(f"--sample_rate applies to clip backbones (3D CNNs); --arch {args.arch} takes TSN's "
                         f"--num_segments segments, one frame each")
        return
    if args.cluster != 'none':
        if args.sample_rate is not None:
            parser.error(f"--sample_rate: with --cluster {args.cluster} {args.arch} takes every frame of the "
                         f"video (--frames), not a strided clip")
        return
    if args.dense_sample:
        parser.error(f"--dense_sample: {args.arch} samples one clip of --num_segments frames at stride "
                     f"--sample_rate (e.g. --num_segments 8 --sample_rate 8 for TSM's 64-frame window)")
    if args.sample_rate is None:
        args.sample_rate = 1


def check_multigrid(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``--multigrid`` against the model: every long-cycle phase's frame count must be one the model takes."""
    if getattr(args, 'multigrid_bn', 'batch') == 'sub' and not getattr(args, 'multigrid', None):
        parser.error("--multigrid_bn sub only applies with --multigrid (the batch is -b otherwise)")
    if getattr(args, 'multigrid_bn', 'batch') == 'sub' and args.sync_bn:
        parser.error("--multigrid_bn sub with --sync_bn: SyncBatchNorm gathers statistics over the processes, which "
                     "sub-batches cannot split; use one of the two")
    if not getattr(args, 'multigrid', None):
        return
    if args.arch in FIXED_INPUT_ARCHS:
        parser.error(f"--multigrid varies the input's size and frames; --arch {args.arch} takes one fixed clip shape")
    if 'long' not in args.multigrid.split(','):
        return
    if args.frames == 'all':
        parser.error("--multigrid long varies F, the frames entering the stem; with --frames all there is no F to "
                     "vary: give --frames F, or use --multigrid short (sizes only)")
    base = args.frames if args.cluster != 'none' else args.num_segments
    frames = [shape.frames for shape in long_cycle_shapes(base, args.img_size)]
    what = f"the long cycle's frames {'/'.join(map(str, frames))} (of {base})"
    if args.cluster != 'none' and min(frames) < args.num_segments:
        parser.error(f"--multigrid long: {what} include fewer than --num_segments {args.num_segments} clusters "
                     f"(G <= F in every phase): raise --frames to at least {4 * args.num_segments} or use "
                     f"--multigrid short")
    if args.cluster == 'none' and args.temporal_pool and any(t % 2 for t in frames):
        parser.error(f"--multigrid long with --temporal_pool: {what} must all be even")
    alpha = slowfast_alpha(args)  # the builder's default when unset
    if args.cluster == 'none' and 'alpha' in backbone_option_names(args.arch) and any(t % alpha for t in frames):
        parser.error(f"--multigrid long with --arch {args.arch}: {what} must be multiples of alpha {alpha}: "
                     f"--num_segments a multiple of {4 * alpha}")


def slowfast_alpha(args: argparse.Namespace) -> Optional[int]:
    """The network's alpha: ``--slowfast_alpha``, else the arch's builder default (None for an arch without one)."""
    return args.slowfast_alpha or backbone_option_defaults(args.arch).get('alpha')


def cluster_problem(cluster: str, num_segments: int, frames: Union[int, str, None]) -> Optional[str]:
    """Why ``--num_segments G`` clusters cannot come from ``--frames F`` (G > F), or None."""
    if cluster != 'none' and isinstance(frames, int) and num_segments > frames:
        return (f"--num_segments {num_segments} clusters from --frames {frames} frames: each cluster needs a "
                f"frame of its own (G <= F); lower --num_segments or raise --frames")
    return None


def check_training(args: argparse.Namespace) -> None:
    """Refuse training settings whose result would not be what they say (exit status 2, naming the flags)."""
    if getattr(args, 'zero_init_residual', False) and not args.no_partialbn and not args.evaluate:
        build_parser().error(
            "--zero_init_residual without --npb: partial BN (the default) freezes every BatchNorm but the first, "
            "weights included, so the zeroed last BatchNorm of each residual block would stay zero and every "
            "residual branch would stay off for the whole run. Add --npb")
    if args.chunk_frames and not args.freeze_early_bn and not args.evaluate:
        build_parser().error(
            f"--chunk_frames {args.chunk_frames} in training needs --freeze_early_bn: a BatchNorm layer before "
            f"the clustering point in training mode (the stem's always) would normalise each chunk of "
            f"{args.chunk_frames} frames with that chunk's statistics, which is not the training of the whole "
            f"video. Add --freeze_early_bn (the same flag without --chunk_frames gives the same training), or "
            f"train without --chunk_frames (lower --frames or -b to fit memory)")


def explicit_flags(argv: List[str]) -> Dict[str, Any]:
    """The flags ``argv`` sets itself (dest -> parsed value), without the parser's defaults."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return vars(parser.parse_args(argv))


def flag_name(dest: str) -> str:
    """``num_segments`` -> ``--num_segments``; ``batch_size`` -> ``--batch-size`` (the flag's long name)."""
    for action in build_parser()._actions:
        if action.dest == dest:
            longs = [o for o in action.option_strings if o.startswith('--')]
            return longs[0] if longs else dest
    return f'--{dest}'


def stored_settings(saved: Dict[str, Any], given: Dict[str, Any], path: str, keys: Iterable[str] = MODEL_KEYS,
                    override: bool = False) -> Dict[str, Any]:
    """The settings of ``keys`` a checkpoint was trained with, as ``{dest: value}``.

    Args:
        saved: the checkpoint's ``args`` (``vars`` of main.py's namespace).
        given: the flags the command line sets explicitly (``explicit_flags``).
        path: the checkpoint, for messages.
        keys: which settings the checkpoint decides.
        override: flags in ``given`` win (an ablation); else a contradiction raises.

    Raises:
        ValueError: a flag in ``given`` contradicts the stored value; names the flag and both values.
    """
    settings = {k: saved[k] for k in keys if k in saved}
    if 'cluster_after' in settings:  # checkpoints before the backbone seam stored ResNet's names ('layer1')
        settings['cluster_after'] = stage_number(settings['cluster_after'])
    clashes = [k for k in settings if k in given and given[k] != settings[k]]
    if clashes and not override:
        said = '; '.join(f"{flag_name(k)}: trained with {settings[k]!r}, the command line says {given[k]!r}"
                         for k in clashes)
        raise ValueError(f"{path}: the command line contradicts the checkpoint's model settings ({said}). The "
                         f"checkpoint's settings decide the model: drop the flag, or add --override_model_args "
                         f"to evaluate it so on purpose")
    for k in clashes:
        settings[k] = given[k]
    return settings
