"""TSN with temporal shift (TSM) and full-video temporal clustering (Liu et al., CVPR 2021, Fig. 2).

Constructor keywords and parameter names follow TSM's ``ops/models.py`` so that TSM checkpoints load by
name (``base_model.layer1.0.conv1.net.weight``, ``new_fc.weight``). The data flow of ``forward``:

    (N, T*C, H, W) -> stem + stages up to ``cluster_after`` on N*T frames (shift over T)
                   -> TemporalClustering: N*T -> N*G       (skipped with cluster='none', G = T)
                   -> remaining stages on N*G (shift over G) -> pool, dropout, new_fc -> consensus over G

The backbone is any entry of ``archs.BACKBONES``; ``TSN`` runs it from its ``Layout`` (stem, stages, pooling),
so nothing here names a backbone's modules. A clip network (3D CNN) takes the T frames as one clip (N, C, T, H, W);
a two-pathway one (SlowFast) clusters only its Slow pathway (``cluster_slow_pathway``, docs/DESIGN.md §7).
"""
import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.nn.init import constant_, normal_

from archs import build_backbone
from archs.base import (clip_to_frames, frames_to_clip, replace_module, run_modules, slow_pathway_context,
                        stage_modules, stage_number)
from ops.basic_ops import ConsensusModule
from ops.chunked import chunked_cluster, shift_halo
from ops.clustering import TemporalClustering, aggregate, rule_names
from ops.temporal_shift import insert_temporal_shift, temporal_context


class TSN(nn.Module):
    """Temporal Segment Network with TSM shifts and optional temporal clustering.

    Args (TSM's): num_class, num_segments (frames sampled with cluster='none'; clusters G otherwise),
        modality ('RGB' or 'Flow'), base_model (an ``archs.BACKBONES`` name), new_length, consensus_type, dropout,
        partial_bn (freeze every BatchNorm but the first in train mode), pretrain ('imagenet'|'scratch'),
        is_shift, shift_div, shift_place, temporal_pool, fc_lr5.
    Args (ours): cluster ('none' or a rule of ``ops.clustering.rule_names()``), num_frames (frames per video entering
        the stem when clustering: an int, 'all' or None), cluster_after (the stage the clustering follows:
        1 = the first, the paper's; a number below the backbone's stage count, or a name such as 'layer1'),
        chunk_frames (run the layers before the clustering point in chunks of this many frames with
        recomputation; 0 = off), fused_assign (the clustering's distances, rule and mean weights
        torch.compile'd; None: on CUDA when Triton is installed), zero_init_residual (from scratch),
        channels_last (frames enter the backbone in channels-last memory format), backbone_options (keywords for
        the backbone's builder: ``slowfast_r50`` takes ``{'alpha': 4 or 8}``).
    """

    def __init__(self, num_class: int, num_segments: int, modality: str, base_model: str = 'resnet50',
                 new_length: Optional[int] = None, consensus_type: str = 'avg', before_softmax: bool = True,
                 dropout: float = 0.8, crop_num: int = 1, partial_bn: bool = True, print_spec: bool = False, pretrain: str = 'imagenet',
                 is_shift: bool = False, shift_div: int = 8, shift_place: str = 'blockres',
                 fc_lr5: bool = False, temporal_pool: bool = False, non_local: bool = False,
                 cluster: str = 'none', num_frames: Union[int, str, None] = None,
                 cluster_after: Union[int, str] = 1, chunk_frames: int = 0, fused_assign: Optional[bool] = None,
                 zero_init_residual: bool = False, channels_last: bool = False,
                 backbone_options: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if modality not in ('RGB', 'Flow'):
            raise ValueError(f"modality {modality!r}: expected 'RGB' or 'Flow'")
        if non_local:
            raise NotImplementedError("non_local blocks are not part of this project")
        if not before_softmax and consensus_type != 'avg':
            raise ValueError("only the avg consensus is supported after softmax")
        if cluster != 'none' and cluster not in rule_names():
            raise ValueError(f"cluster {cluster!r}: expected 'none' or one of {rule_names()} (ops/clustering.py)")
        if cluster != 'none' and temporal_pool:
            raise ValueError("temporal_pool cannot be combined with temporal clustering")
        self.num_class = num_class
        self.num_segments = num_segments
        self.modality = modality
        self.arch = base_model
        self.new_length = new_length or (1 if modality == 'RGB' else 5)
        self.consensus_type, self.before_softmax, self.dropout = consensus_type, before_softmax, dropout
        self.crop_num = crop_num
        self.pretrain = pretrain
        self.is_shift, self.shift_div, self.shift_place = is_shift, shift_div, shift_place  # TSM's shift
        self.fc_lr5 = fc_lr5
        self.temporal_pool = temporal_pool
        self.cluster, self.num_frames = cluster, num_frames  # the paper's clustering
        self.cluster_after = stage_number(cluster_after)
        self.chunk_frames = chunk_frames
        self._enable_pbn = partial_bn
        self.zero_init_residual = zero_init_residual
        self.channels_last = channels_last  # frames made channels-last in forward; the caller converts weights
        self.backbone_options = dict(backbone_options or {})

        self._prepare_base_model(base_model)
        if not 1 <= self.cluster_after < len(self.layout.stages):
            raise ValueError(f"cluster_after {cluster_after!r}: {base_model} has {len(self.layout.stages)} stages "
                             f"({', '.join(self.layout.stage_names)}); the clustering follows one of the first "
                             f"{len(self.layout.stages) - 1}")
        # TSM keeps the ImageNet classifier's name for its dropout; the classifier is new_fc
        replace_module(self.base_model, self.layout.classifier, nn.Dropout(p=dropout))
        self.new_fc = nn.Linear(self.layout.feature_dim, num_class)
        normal_(self.new_fc.weight, 0, 0.001)
        constant_(self.new_fc.bias, 0)
        if modality == 'Flow':
            self._construct_flow_model()
        elif self.new_length > 1:
            self._construct_rgb_model()
        self.consensus = ConsensusModule(consensus_type)
        if not before_softmax:
            self.softmax = nn.Softmax(dim=-1)
        self.clustering = None
        if cluster != 'none':
            self.clustering = TemporalClustering(cluster, num_segments, fused=fused_assign)
        self.train()  # apply partial BN now, so requires_grad already matches the optimizer policies
        if print_spec:
            print(self.spec())

    # ----------------------------------------------------------------------------------- construction
    def _prepare_base_model(self, base_model: str) -> None:
        self.base_model, self.layout = build_backbone(base_model, self.pretrain, self.zero_init_residual,
                                                      self.backbone_options)
        if self.layout.clip:
            self._check_clip_options()
        if self.is_shift:
            insert_temporal_shift(self.base_model, self.layout, self.num_segments, n_div=self.shift_div,
                                  place=self.shift_place, temporal_pool=self.temporal_pool)
        self.input_size = self.layout.input_size
        self.input_mean = list(self.layout.input_mean)
        self.input_std = list(self.layout.input_std)
        if self.modality == 'Flow':
            self.input_mean = [0.5]
            self.input_std = [0.226]

    def _check_clip_options(self) -> None:
        """A clip network (3D CNN) keeps time as an axis: TSM's shift and pool and the chunked path are 2D's."""
        for on, what in ((self.is_shift, 'the temporal shift (--shift)'), (self.temporal_pool, '--temporal_pool'),
                         (self.chunk_frames, '--chunk_frames'), (self.modality != 'RGB', f'{self.modality} input'),
                         (self.new_length != 1, f'new_length {self.new_length} (frame stacks)')):
            if on:
                raise ValueError(f"{self.arch} is a clip network (a 3D CNN: time is an axis of its convolutions): "
                                 f"{what} applies to 2D backbones only")

    def _construct_flow_model(self) -> None:
        """First conv takes 2*new_length flow channels, initialised from the mean RGB kernel (TSN)."""
        conv = self.base_model.get_submodule(self.layout.first_conv)
        kernel = conv.weight.data.mean(dim=1, keepdim=True).expand(-1, 2 * self.new_length, -1, -1)
        new_conv = nn.Conv2d(2 * self.new_length, conv.out_channels, conv.kernel_size, conv.stride,
                             conv.padding, bias=conv.bias is not None)
        new_conv.weight.data = kernel.contiguous()
        replace_module(self.base_model, self.layout.first_conv, new_conv)

    def _construct_rgb_model(self) -> None:
        """Early fusion (Karpathy et al. 2014): the first conv takes ``new_length`` K stacked RGB frames (3K
        channels, frame after frame); each frame's slice is the RGB kernel / K, so K identical frames give the
        1-frame stem's output."""
        conv = self.base_model.get_submodule(self.layout.first_conv)
        new_conv = nn.Conv2d(3 * self.new_length, conv.out_channels, conv.kernel_size, conv.stride,
                             conv.padding, bias=conv.bias is not None)
        new_conv.weight.data = conv.weight.data.repeat(1, self.new_length, 1, 1) / self.new_length
        if conv.bias is not None:
            new_conv.bias.data = conv.bias.data.clone()
        replace_module(self.base_model, self.layout.first_conv, new_conv)

    def spec(self) -> str:
        """A short description of the network, printed at start-up as TSM does."""
        temporal = (f"{self.cluster} clustering after {self.layout.stage_names[self.cluster_after - 1]}: "
                    f"{self.num_frames} frames -> "
                    f"{self.num_segments} clusters" if self.clustering is not None
                    else f"{self.num_segments} segments")
        return (f"TSN: {self.arch} {self.modality}, {temporal}, shift={self.is_shift}"
                f"{f' (1/{self.shift_div}, {self.shift_place})' if self.is_shift else ''}, "
                f"consensus={self.consensus_type}, dropout={self.dropout}, classes={self.num_class}")

    # ------------------------------------------------------------------------------------- training
    def train(self, mode: bool = True) -> 'TSN':
        """Partial BN (TSN): in training, every BatchNorm but the first keeps its statistics and affine."""
        super().train(mode)
        if self._enable_pbn and mode:
            count = 0
            for m in self.base_model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    count += 1
                    if count >= 2:
                        m.eval()
                        m.weight.requires_grad_(False)
                        m.bias.requires_grad_(False)
        return self

    def get_optim_policies(self) -> List[dict]:
        """TSM's parameter groups with learning-rate and weight-decay multipliers.

        first conv: lr x5 for Flow, else x1; biases lr x2 and no decay; BatchNorm no decay (only the first
        BN when partial BN is on, the others are frozen); new_fc lr x5 / bias x10 with ``fc_lr5``.
        Every trainable parameter lands in exactly one group.
        """
        groups = {k: [] for k in ('first_conv_weight', 'first_conv_bias', 'normal_weight', 'normal_bias',
                                  'lr5_weight', 'lr10_bias', 'bn')}
        conv_cnt, bn_cnt = 0, 0
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                conv_cnt += 1
                ps = list(m.parameters(recurse=False))
                prefix = 'first_conv' if conv_cnt == 1 else 'normal'
                groups[f'{prefix}_weight'].append(ps[0])
                if len(ps) == 2:
                    groups[f'{prefix}_bias'].append(ps[1])
            elif isinstance(m, nn.Linear):
                ps = list(m.parameters(recurse=False))
                late = self.fc_lr5 and m is self.new_fc
                groups['lr5_weight' if late else 'normal_weight'].append(ps[0])
                if len(ps) == 2:
                    groups['lr10_bias' if late else 'normal_bias'].append(ps[1])
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)):
                bn_cnt += 1
                if not self._enable_pbn or bn_cnt == 1:
                    groups['bn'].extend(m.parameters(recurse=False))
            elif len(list(m.parameters(recurse=False))) > 0:
                raise ValueError(f"no optimizer policy for module type {type(m).__name__}")
        flow = self.modality == 'Flow'
        mults = {'first_conv_weight': (5 if flow else 1, 1), 'first_conv_bias': (10 if flow else 2, 0),
                 'normal_weight': (1, 1), 'normal_bias': (2, 0), 'bn': (1, 0),
                 'lr5_weight': (5, 1), 'lr10_bias': (10, 0)}
        return [{'params': ps, 'lr_mult': mults[k][0], 'decay_mult': mults[k][1], 'name': k}
                for k, ps in groups.items()]

    # -------------------------------------------------------------------------------------- forward
    @property
    def sample_len(self) -> int:
        return (3 if self.modality == 'RGB' else 2) * self.new_length

    def early_stages(self) -> List[int]:
        """The stages (0-based) that run on every input frame: up to the clustering point; none without it."""
        return list(range(self.cluster_after)) if self.clustering is not None else []

    def early_modules(self) -> List[nn.Module]:
        """Every module that runs on every input frame: the stem's and the early stages'."""
        stem = [m for path in self.layout.stem for m in self.base_model.get_submodule(path).modules()]
        return stem + stage_modules(self.base_model, self.layout, self.early_stages())

    def run_early(self, x: torch.Tensor, t: int,
                  lengths: Optional[torch.Tensor] = None) -> Union[torch.Tensor, List[torch.Tensor]]:
        """Stem and the early stages on (N*t, C, H, W) frames, shifting over t frames (``lengths``: (N,) real
        frame counts of a padded batch) -> (N*t, C', H', W'). A clip network takes the frames as clips and
        returns its clip (N, C', t', H', W'), t' = t except after temporal strides (SlowFast: [slow, fast])."""
        if self.layout.clip:
            x = frames_to_clip(x, t)
        x = run_modules(self.base_model, self.layout.stem, x)
        with temporal_context(t, lengths):
            for s in self.early_stages():
                x = run_modules(self.base_model, self.layout.stages[s], x)
        return x

    def run_late(self, x: Union[torch.Tensor, List[torch.Tensor]], t: int,
                 to_slow: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """The remaining stages, pooling and classifier on (N*t, C, H, W) -> (N*t', K) scores; a clip network
        takes its clip (``run_early``'s output) and pools time in its head: (N, K). ``to_slow``: a clustered
        two-pathway network's map of its lateral connections (``cluster_slow_pathway``)."""
        for s in range(len(self.early_stages()), len(self.layout.stages)):
            with temporal_context(t), slow_pathway_context(to_slow) if to_slow else contextlib.nullcontext():
                x = run_modules(self.base_model, self.layout.stages[s], x)
            if self.temporal_pool and s == 1:
                t //= 2  # TemporalPool halved time at the start of the second stage (TSM)
        x = torch.flatten(run_modules(self.base_model, self.layout.head, x), 1)
        return self.new_fc(self.base_model.get_submodule(self.layout.classifier)(x))

    def cluster_slow_pathway(self, x: torch.Tensor, t_in: int, lengths: Optional[torch.Tensor] = None
                             ) -> Tuple[List[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]:
        """A two-pathway network (SlowFast) with clustering, up to the clustering point (docs/DESIGN.md §7).

        The stem and early stages run with the Slow pathway on every frame and the lateral connections at every
        Fast frame (``slow_pathway_context``); the Slow pathway's activations of all frames are clustered into G
        means, the Fast pathway keeps every frame. (N*F, C, H, W) frames -> ([slow (N, C', G, H', W'), fast
        (N, c', F, H', W')], the map ``run_late`` gives the later lateral connections: their cluster means).
        """
        with slow_pathway_context(lambda y: y):
            slow, fast = self.run_early(x, t_in, lengths)
        if slow.shape[2] != t_in:
            raise ValueError(f"{self.arch}: the Slow pathway has {slow.shape[2]} time steps at the clustering "
                             f"point for {t_in} frames: clustering a two-pathway network needs no temporal stride "
                             f"before it")
        assign = self.clustering.assign(clip_to_frames(slow), t_in, lengths)

        def to_slow(y: torch.Tensor) -> torch.Tensor:
            """(N, C, F, H, W) -> (N, C, G, H, W): the mean of each cluster's frames."""
            return aggregate(y.transpose(1, 2), assign, self.num_segments, lengths).transpose(1, 2)
        return [to_slow(slow), fast], to_slow

    @contextlib.contextmanager
    def sampled_frames(self, t: int) -> Iterator[None]:
        """Inside the block, inputs of ``t`` sampled frames per video instead of ``num_segments`` (a multigrid
        long-cycle phase, ops/multigrid.py); with clustering G stays (F comes with the input): nothing changes."""
        saved = self.num_segments
        if self.clustering is None:
            self.num_segments = t
        try:
            yield
        finally:
            self.num_segments = saved

    def forward(self, input: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, T*C, H, W) clips (+ optional (N,) real frame counts) -> (N, num_class) scores.

        With clustering, T is the number of frames of the (padded) batch and ``lengths`` marks the padding;
        without, T must equal ``num_segments`` (callers fold extra crops or clips into N). A clip network (3D
        CNN) takes the T frames as one clip; with clustering its later stages see a clip of the G cluster means.
        """
        n = input.shape[0]
        x = input.reshape((-1, self.sample_len) + input.shape[-2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t_in = x.shape[0] // n
        if self.clustering is None:
            if t_in != self.num_segments:
                raise ValueError(f"input has {t_in} frames per video; expected num_segments="
                                 f"{self.num_segments} (fold extra clips or crops into the batch)")
            t = self.num_segments
            x = self.run_late(self.run_early(x, t), t)
        else:
            lengths_ = None if lengths is None else lengths.to(device=input.device, dtype=torch.long)
            to_slow = None
            if self.chunk_frames and self.chunk_frames < t_in:
                x = chunked_cluster(self.run_early, self.clustering, x, t_in, lengths_, self.chunk_frames,
                                    halo=shift_halo(self.early_modules()))
            elif self.layout.pathways > 1:
                x, to_slow = self.cluster_slow_pathway(x, t_in, lengths_)
            else:
                x = self.run_early(x, t_in, lengths_)
                if self.layout.clip:
                    x = clip_to_frames(x)
                t_mid = x.shape[0] // n  # a clip network's stem may stride time: F -> F' steps to cluster
                if lengths_ is not None and t_mid != t_in:
                    lengths_ = ((lengths_ * t_mid + t_in - 1) // t_in).clamp(1, t_mid)
                x = self.clustering(x, num_frames=t_mid, lengths=lengths_)
                if self.layout.clip:
                    x = frames_to_clip(x, self.num_segments)
            t = self.num_segments
            x = self.run_late(x, t, to_slow)
        if not self.before_softmax:
            x = self.softmax(x)
        t_out = 1 if self.layout.clip else t // 2 if (self.is_shift and self.temporal_pool) else t
        x = x.view((-1, t_out) + x.shape[1:])
        return self.consensus(x).squeeze(1)
