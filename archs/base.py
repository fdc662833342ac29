"""The backbone seam: what ``TSN`` needs to know about a 2D backbone, as module paths (docs/DESIGN.md §7).

A backbone builder (one file in ``archs/``, one line in ``archs/__init__.py``'s registry) returns the network
and its ``Layout``. ``TSN`` keeps the network as ``base_model``, so the parameter names are the network's own
(TSM's: ``base_model.layer1.0.conv1.net.weight``), and runs it from the layout alone:

    frames (N*T, C, H, W) -> stem -> stage 1 -> ... -> stage S -> head (pooling) -> (N*T, feature_dim)

Paths are dotted submodule names (``'layer1'``, ``'features.4'``), resolved at every call, so a module that
is wrapped later (a temporal shift, a flow stem) is found under the same path.
"""
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn


@dataclass(frozen=True)
class Layout:
    """A backbone's parts, by module path.

    Attributes:
        stem: modules run in order before the first stage (ResNet: conv1, bn1, relu, maxpool).
        stages: per stage, the modules run in order (ResNet: ``[['layer1'], ['layer2'], ...]``); the
            clustering can follow any stage but the last (``cluster_after``, 1 = after the first stage).
        stage_names: a name per stage, for messages and run names.
        head: modules after the last stage that pool to (M, feature_dim, 1, 1).
        classifier: the ImageNet classifier, which ``TSN`` replaces by its dropout (TSM's ``last_layer_name``).
        feature_dim: channels entering the classifier.
        first_conv: the convolution that reads the frames (Flow widens it to 2 * new_length channels).
        shift_sites: per shift placement (``'blockres'``, ``'block'``), per stage, the modules a temporal shift
            wraps; a placement the backbone does not offer is absent.
        input_size, input_mean, input_std: the training crop and the RGB normalisation of the weights.
        clip: the network takes clips ``(M, C, T, H, W)`` and keeps time as an axis through its stages (3D CNNs);
            otherwise frames ``(M*T, C, H, W)`` (2D CNNs, time in the batch). A clip network's head pools time.
        pathways: 1, or 2 for a two-pathway clip network (SlowFast): its stem splits the clip and its stages take
            and return ``[slow, fast]`` lists; the head concatenates them.
    """
    stem: Sequence[str]
    stages: Sequence[Sequence[str]]
    stage_names: Sequence[str]
    head: Sequence[str]
    classifier: str
    feature_dim: int
    first_conv: str
    shift_sites: Dict[str, Sequence[Sequence[str]]] = field(default_factory=dict)
    input_size: int = 224
    input_mean: Sequence[float] = (0.485, 0.456, 0.406)
    input_std: Sequence[float] = (0.229, 0.224, 0.225)
    clip: bool = False
    pathways: int = 1


_SLOW_PATHWAY = threading.local()  # per thread: a stack of the Slow pathway's time maps


@contextlib.contextmanager
def slow_pathway_context(to_slow: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Inside the block, a two-pathway network (``Layout.pathways == 2``, SlowFast) runs its Slow pathway on
    clustered time instead of every alpha-th frame: its stem gives the Slow pathway every frame, and each lateral
    connection is computed at every Fast frame (its temporal convolution with stride 1: output i centred on Fast
    frame i, as the strided one's output j is centred on frame j * alpha), then mapped by ``to_slow``:
    (N, C, F, H, W) -> (N, C, t_slow, H, W), the identity before the clustering point, the cluster means after.
    """
    stack = _SLOW_PATHWAY.__dict__.setdefault('stack', [])
    stack.append(to_slow)
    try:
        yield
    finally:
        stack.pop()


def slow_pathway_map() -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """The innermost ``slow_pathway_context``'s map, or None outside any (the network's own subsampling)."""
    stack = getattr(_SLOW_PATHWAY, 'stack', None)
    return stack[-1] if stack else None


def run_modules(net: nn.Module, paths: Sequence[str], x: torch.Tensor) -> torch.Tensor:
    """Apply the submodules of ``net`` named by ``paths`` in order: (M, C, H, W) -> (M, C', H', W')."""
    for path in paths:
        x = net.get_submodule(path)(x)
    return x


def replace_module(net: nn.Module, path: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted ``path`` of ``net`` (its parameters are then named ``path.*``)."""
    parent, _, name = path.rpartition('.')
    owner = net.get_submodule(parent) if parent else net
    if isinstance(owner, nn.Sequential) and name.isdigit():
        owner[int(name)] = module
    else:
        setattr(owner, name, module)


def walk_layout(net: nn.Module, layout: Layout, x: torch.Tensor) -> Tuple[torch.Tensor, List[int]]:
    """The layout run in order without TSN: stem, stages, head -> (pooled features, time lengths).

    ``x`` is a clip ``(M, C, T, H, W)`` (``layout.clip``) or frames; the features are what the network's own
    ``forward`` feeds its classifier, ``(M, feature_dim, 1, ...)``; the lengths are the time axis after the stem and
    after each stage (clip networks; empty for frames): entry 1 is what the clustering point after stage 1 sees.
    """
    steps: List[int] = []
    x = run_modules(net, layout.stem, x)
    for paths in [None] + list(layout.stages):
        x = x if paths is None else run_modules(net, paths, x)
        if layout.clip:
            steps.append(x.shape[2])
    return run_modules(net, layout.head, x), steps


def frames_to_clip(x: torch.Tensor, t: int) -> torch.Tensor:
    """(M*t, C, H, W) frames -> (M, C, t, H, W) clips."""
    return x.view(-1, t, *x.shape[1:]).transpose(1, 2)


def clip_to_frames(x: torch.Tensor) -> torch.Tensor:
    """(M, C, t, H, W) clips -> (M*t, C, H, W) frames."""
    return x.transpose(1, 2).reshape(-1, x.shape[1], *x.shape[3:])


def stage_modules(net: nn.Module, layout: Layout, stages: Sequence[int]) -> List[nn.Module]:
    """The modules of the given stages (0-based), with everything inside them."""
    return [m for s in stages for path in layout.stages[s] for m in net.get_submodule(path).modules()]


def torchvision_model(fn_name: str, weights_name: str, arch: str, pretrain: str, **kwargs) -> nn.Module:
    """``torchvision.models.<fn_name>``, with its ImageNet weights when ``pretrain == 'imagenet'``, random with
    ``'scratch'`` (``kwargs`` go to the builder then)."""
    import torchvision
    if pretrain not in ('imagenet', 'scratch'):
        raise ValueError(f"unknown --pretrain {pretrain!r} for {arch}: expected 'imagenet' or 'scratch'")
    builder = getattr(torchvision.models, fn_name)
    if pretrain == 'scratch':
        return builder(weights=None, **kwargs)
    return with_weights(builder, getattr(torchvision.models, weights_name).IMAGENET1K_V1, arch, 'ImageNet')


def with_weights(builder: Callable[..., nn.Module], weights: Any, arch: str, what: str) -> nn.Module:
    """``builder(weights=weights)`` for a torchvision weights entry, offline-safe.

    The weights come from torchvision's cache (``$TORCH_HOME/hub/checkpoints``) or a download; without network and
    without the cached file the error says which file to put there, or how to start without it.
    """
    try:
        return builder(weights=weights)
    except Exception as err:  # URLError, socket errors, a corrupt cache file: all mean "no weights here"
        raise RuntimeError(
            f"could not load torchvision's {what} weights for {arch} ({type(err).__name__}: {err}). "
            f"Without network, put the file {weights.url.rsplit('/', 1)[-1]} into "
            f"$TORCH_HOME/hub/checkpoints (default ~/.cache/torch/hub/checkpoints), "
            f"or start from local weights with --tune_from PATH, or train with --pretrain scratch.") from err


def stage_number(value: object) -> int:
    """A stage given as ``1``, ``'1'``, ``'stage1'`` or TSM's ResNet name ``'layer1'`` -> 1 (1-based).

    Raises:
        ValueError: anything else.
    """
    text = str(value)
    for prefix in ('layer', 'stage', ''):
        rest = text[len(prefix):] if text.startswith(prefix) else None
        if rest is not None and rest.isdigit() and int(rest) >= 1:
            return int(rest)
    raise ValueError(f"{value!r} is not a stage: expected a number from 1 (the first stage, the paper's "
                     f"clustering point), or a name such as 'stage1' or ResNet's 'layer1'")
