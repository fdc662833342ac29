"""Command-line flags. TSM's flags keep their names and meanings; ours are grouped at the end (DESIGN §2)."""
import argparse
from typing import List, Optional, Union


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


def build_parser() -> argparse.ArgumentParser:
    """The parser shared by ``main.py`` and the tools, so a tool builds exactly the model a run trains."""
    parser = argparse.ArgumentParser(description="TSM with full-video temporal clustering (Liu et al., CVPR 2021)")
    parser.add_argument('dataset', type=str, help="ucf101, hmdb51, something, somethingv2, kinetics, breakfast, "
                        "move4mnist (alias movingmnist) or custom")
    parser.add_argument('modality', type=str, choices=['RGB', 'Flow'])
    parser.add_argument('--train_list', type=str, default=None, help="overrides the data set's training list")
    parser.add_argument('--val_list', type=str, default=None, help="overrides the data set's validation list")
    parser.add_argument('--root_path', type=str, default=None, help="overrides the data set's frame root")
    parser.add_argument('--store_name', type=str, default="", help="run name (default: built from the settings)")

    # ========================= Model Configs ==========================
    parser.add_argument('--arch', type=str, default="resnet50",
                        choices=['resnet18', 'resnet34', 'resnet50', 'resnet101'])
    parser.add_argument('--num_segments', type=int, default=8,
                        help="frames sampled per video (cluster none) or clusters G (clustering)")
    parser.add_argument('--consensus_type', type=str, default='avg', choices=['avg', 'identity'])
    parser.add_argument('--k', type=int, default=3, help="unused, kept for TSM's command lines")
    parser.add_argument('--dropout', '--do', default=0.5, type=float, metavar='DO')
    parser.add_argument('--loss_type', type=str, default="nll", choices=['nll'])
    parser.add_argument('--img_feature_dim', default=256, type=int, help="unused, kept for TSM's command lines")
    parser.add_argument('--suffix', type=str, default=None)
    parser.add_argument('--pretrain', type=str, default='imagenet', choices=['imagenet', 'scratch'])
    parser.add_argument('--tune_from', type=str, default=None, help='fine-tune from local weights')

    # ========================= Learning Configs ==========================
    parser.add_argument('--epochs', default=120, type=int, metavar='N')
    parser.add_argument('-b', '--batch-size', default=256, type=int, metavar='N', help='mini-batch size')
    parser.add_argument('--lr', '--learning-rate', default=0.001, type=float, metavar='LR')
    parser.add_argument('--lr_type', default='step', type=str, choices=['step', 'cos'], metavar='LRtype')
    parser.add_argument('--lr_steps', default=[20, 40], type=float, nargs="+", metavar='LRSteps',
                        help='epochs at which the learning rate is divided by 10')
    parser.add_argument('--optimizer', default='sgd', choices=['sgd', 'adamw'],
                        help="sgd as TSM (default); adamw trains from scratch faster (--lr 1e-3, --wd 0.05)")
    parser.add_argument('--momentum', default=0.9, type=float, metavar='M')
    parser.add_argument('--weight-decay', '--wd', default=5e-4, type=float, metavar='W')
    parser.add_argument('--clip-gradient', '--gd', default=20, type=float, metavar='W',
                        help='gradient norm clipping (0 = off)')
    parser.add_argument('--no_partialbn', '--npb', default=False, action="store_true")

    # ========================= Monitor Configs ==========================
    parser.add_argument('--print-freq', '-p', default=20, type=int, metavar='N')
    parser.add_argument('--eval-freq', '-ef', default=5, type=int, metavar='N')

    # ========================= Runtime Configs ==========================
    parser.add_argument('-j', '--workers', default=8, type=int, metavar='N', help='data loading workers')
    parser.add_argument('--resume', default='', type=str, metavar='PATH', help='checkpoint to resume from')
    parser.add_argument('-e', '--evaluate', dest='evaluate', action='store_true',
                        help='evaluate the model on the validation set and exit')
    parser.add_argument('--snapshot_pref', type=str, default="")
    parser.add_argument('--start-epoch', default=0, type=int, metavar='N',
                        help='first epoch (overridden by --resume)')
    parser.add_argument('--gpus', nargs='+', type=int, default=None, help="unused: see --device and torchrun")
    parser.add_argument('--flow_prefix', default="", type=str)
    parser.add_argument('--root_log', type=str, default='log')
    parser.add_argument('--root_model', type=str, default='checkpoint')

    parser.add_argument('--shift', default=False, action="store_true", help='use temporal shift')
    parser.add_argument('--shift_div', default=8, type=int, help='number of div for shift (default: 8)')
    parser.add_argument('--shift_place', default='blockres', type=str, choices=['blockres', 'block'])
    parser.add_argument('--temporal_pool', default=False, action="store_true")
    parser.add_argument('--non_local', default=False, action="store_true", help="not supported")
    parser.add_argument('--dense_sample', default=False, action="store_true", help='dense sampling (I3D)')
    parser.add_argument('--twice_sample', default=False, action="store_true", help='test: two clips offset by half a segment')

    # ========================= Full-video clustering (ours) ==========================
    parser.add_argument('--cluster', default='none', choices=['none', 'uniform', 'slope', 'cumulative'],
                        help="temporal clustering after --cluster_after (paper Sec. 3.3); none = TSM sampling")
    parser.add_argument('--frames', default=None, type=frames_type,
                        help="frames per video entering the stem when clustering: an integer F or 'all' "
                             "(default 32)")
    parser.add_argument('--cluster_after', default='layer1', choices=['layer1', 'layer2', 'layer3'])
    parser.add_argument('--chunk_frames', default=0, type=int,
                        help="run the layers before clustering in chunks of K frames with recomputation")
    parser.add_argument('--fused_assign', default='auto', choices=['auto', 'on', 'off'],
                        help="torch.compile the clustering: the sign Hamming distances in one pass over the "
                             "activations, the rule and the mean weights (same values; the first step compiles; "
                             "not used with --chunk_frames); auto: on for CUDA activations when Triton is "
                             "installed, off on the CPU")
    parser.add_argument('--online', default=False, action='store_true',
                        help="online TSM: uni-directional shift (past to future only), so that tools/demo.py "
                             "--online runs the model frame by frame; needs --shift and --cluster none")
    parser.add_argument('--img_size', default=224, type=int, help="crop size")
    parser.add_argument('--scale_size', default=None, type=int, help="test-time short side (default img_size*256/224)")
    parser.add_argument('--device', default='auto', choices=['auto', 'cpu', 'cuda'])
    parser.add_argument('--seed', default=0, type=int)
    parser.add_argument('--amp', default='none', choices=['none', 'fp16', 'bf16'], help="mixed precision")
    parser.add_argument('--channels_last', default=False, action='store_true', help="channels-last memory layout")
    parser.add_argument('--image_tmpl', default=None, type=str, help="frame file name template, e.g. 'img_{:05d}.jpg'")
    parser.add_argument('--start_index', default=None, type=int, help="number of the first frame file")
    parser.add_argument('--video_source', default=None, choices=['frames', 'video'],
                        help="read frame folders or decode video files (default: the data set's)")
    parser.add_argument('--on_bad_video', default='error', choices=['error', 'skip'])
    parser.add_argument('--sync_bn', default=False, action='store_true', help="SyncBatchNorm under torchrun")
    parser.add_argument('--save_freq', default=0, type=int,
                        help="also checkpoint every N iterations inside an epoch (0: at epoch ends only)")
    return parser


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse and complete the arguments (defaults that depend on other flags)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cluster != 'none' and args.frames is None:
        args.frames = 32
    if args.cluster == 'none' and args.frames is not None:
        parser.error("--frames only applies with --cluster uniform|slope|cumulative")
    if args.online and (not args.shift or args.cluster != 'none' or args.temporal_pool):
        parser.error("--online needs --shift and --cluster none, without --temporal_pool")
    if args.scale_size is None:
        args.scale_size = args.img_size * 256 // 224
    if args.chunk_frames < 0:
        parser.error("--chunk_frames must be >= 0")
    if args.fused_assign == 'on' and args.chunk_frames and args.cluster != 'none':
        print("note: --fused_assign on does not apply with --chunk_frames (the chunked path computes its distances "
              "from packed sign codes, and its rule and mean weights, eagerly)")
    return args
