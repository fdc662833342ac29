"""Published cost figures that tools/profile_model.py puts beside its own: the paper's Table 1 and the clip
backbones' published multiply-adds per clip, and the lookup of the row a profiled command corresponds to."""
import argparse
from typing import Optional

# Paper Table 1 (ResNet-18, 224x224, Move4MNIST: 32-frame videos, 4 classes). Key: (cluster?, G, F).
PAPER_TABLE1 = {
    (False, 8, 8): {'name': 'TSM 8 frames', 'gflops': 14.56},
    (False, 16, 16): {'name': 'TSM 16 frames', 'gflops': 29.12},
    (False, 32, 32): {'name': 'TSM all 32 frames', 'gflops': 58.24, 'memory_gb': 3.15},
    (True, 8, 32): {'name': 'ours 8 clusters', 'gflops': 28.61, 'memory_gb': 1.56},
    (True, 16, 32): {'name': 'ours 16 clusters', 'gflops': 38.51},
}

# Published multiply-adds per clip of backbones with --cluster none. Key: (arch, frames, crop size).
PUBLISHED_CLIP_GMACS = {
    ('r3d_18', 16, 112): {'gmacs': 40.70, 'source': "torchvision's model table (R3D_18_Weights, GFLOPS)"},
    ('mc3_18', 16, 112): {'gmacs': 43.34, 'source': "torchvision's model table (MC3_18_Weights, GFLOPS)"},
    ('r2plus1d_18', 16, 112): {'gmacs': 40.52, 'source': "torchvision's model table (R2Plus1D_18_Weights, GFLOPS)"},
    ('s3d', 16, 224): {'gmacs': 17.98, 'source': "torchvision's model table (S3D_Weights, GFLOPS)"},
    ('c3d', 16, 112): {'gmacs': 38.62, 'source': "mmaction2 c3d_sports1m-pretrained_8xb30-16x1x1-45e_ucf101-rgb "
                                                 "metafile, FLOPs 38615475200 (multiply-adds; 78,409,573 "
                                                 "parameters with 101 classes, as ours); 38.5 G is the figure "
                                                 "quoted for C3D beside Res3D (Tran et al., arXiv:1708.05038)"},
    ('i3d_resnet50', 32, 256): {'gmacs': 43.56, 'source': "mmaction2 i3d_r50_32x2x1_100e_kinetics400_rgb metafile "
                                                          "(1.x: ..._8xb8_...), FLOPs 43564040192 (multiply-adds; "
                                                          "28,043,472 parameters, as ours; its size is not "
                                                          "stated there: 256 px, the test crop, matches)"},
}


# pytorchvideo's model zoo (Kinetics-400 table: fvcore's count, which adds training-mode BatchNorm, 5 operations
# an element, to the convolutions and linear layers, where torch's FlopCounterMode counts no BatchNorm: 7.8-8.6%
# above it for X3D; SlowFast 8x8's 65.71 counts no BatchNorm; docs/PERFORMANCE.md) with pytorchvideo 0.1.5's own
# models measured under torch's counter beside it. Key: (arch, frames, crop size, SlowFast alpha or None).
ZOO = "pytorchvideo model zoo (fvcore; pytorchvideo's own model under torch's counter: {:.3f})"
PYTORCHVIDEO_ZOO_GMACS = {
    ('x3d_xs', 4, 182, None): {'gmacs': 0.91, 'source': ZOO.format(0.8439)},
    ('x3d_s', 13, 182, None): {'gmacs': 2.96, 'source': ZOO.format(2.7270)},
    ('x3d_m', 16, 256, None): {'gmacs': 6.72, 'source': ZOO.format(6.1857)},
    ('slowfast_r50', 32, 256, 4): {'gmacs': 65.71, 'source': ZOO.format(65.712)},
    ('slowfast_r50', 32, 256, 8): {'gmacs': 36.69, 'source': ZOO.format(36.102)},
}


def frames_per_input(args: argparse.Namespace) -> int:
    """T, the frames per video the model receives: num_segments (cluster none), F, or L for --frames all."""
    if args.cluster == 'none':
        return args.num_segments
    return args.video_frames if args.frames == 'all' else args.frames


def paper_row(args: argparse.Namespace) -> Optional[dict]:
    """The paper's Table 1 row of this configuration, if it is one (ResNet-18, 224 px, RGB, 32 frames)."""
    if (args.arch, args.img_size, args.modality, args.temporal_pool) != ('resnet18', 224, 'RGB', False):
        return None
    if args.cluster != 'none' and args.cluster_after != 1:
        return None
    return PAPER_TABLE1.get((args.cluster != 'none', args.num_segments, frames_per_input(args)))


def published_row(args: argparse.Namespace) -> Optional[dict]:
    """The published GMACs of this backbone's clip (``PUBLISHED_CLIP_GMACS``, ``PYTORCHVIDEO_ZOO_GMACS``), if the
    command is such a clip."""
    if args.cluster != 'none' or args.modality != 'RGB':
        return None
    key = (args.arch, args.num_segments, args.img_size)
    from opts import slowfast_alpha
    alpha = slowfast_alpha(args)
    return PUBLISHED_CLIP_GMACS.get(key) or PYTORCHVIDEO_ZOO_GMACS.get(key + (alpha,))
