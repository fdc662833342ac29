"""``torch.compile`` for the pieces of the temporal clustering (``--fused_assign``; ops/clustering.py).

The clustering's distances, rule and mean weights are small functions on whole batches. Compiled, each becomes
one or a few kernels with the same values as eager (the clustering depends on exact equality: ties decide the
clusters). This module holds what compiling needs and nothing of the paper: ``run_compiled`` compiles a function
once per process with static shapes, keeps at most torch's ``recompile_limit`` input signatures per function,
and turns compiling off for the process on the first failure, so the callers run eagerly; ``fused_by_default``
is the ``--fused_assign auto`` choice.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Set

import torch
from torch import Tensor


@dataclass
class CompileCache:
    """The process's compiled clustering pieces: ``functions`` (key -> compiled function), ``signatures`` (key ->
    the input signatures compiled so far), ``warned`` (keys past the signature limit, warned once), ``failed``
    (a compiled call failed: everything runs eagerly from then on), ``triton`` (Triton installed; None: not
    looked up yet)."""
    functions: Dict[str, Callable] = field(default_factory=dict)
    signatures: Dict[str, Set[tuple]] = field(default_factory=dict)
    warned: Set[str] = field(default_factory=set)
    failed: bool = False
    triton: Optional[bool] = None


CACHE = CompileCache()  # tests swap in a fresh one


def run_compiled(key: str, fn: Callable, what: str, *args: Any) -> Any:
    """``torch.compile(fn)(*args)`` (wrapped once per process under ``key``); None where the caller must run
    eagerly. ``what`` names the piece in warnings (e.g. 'the cumulative rule').

    Shapes are static: each new input signature (shapes, strides, dtypes, device, ``G``, grad and autocast
    modes: what torch's guards check) compiles its own graph (a dynamic-shape recompile of the rule raised
    an ``InductorError`` on CUDA). torch keeps at most
    ``recompile_limit`` graphs per function and would then run it eagerly without a word, so past that many
    signatures the new ones run eagerly here, with one warning per function (e.g. ``--frames all``, whose
    padded length changes from batch to batch). Any error of the compiled call (a compiler that is missing
    or fails, but also one the eager code would raise too) gives one warning and turns every compiled piece
    of the clustering off for the process: the callers then run eagerly, which computes the same values or
    raises that error itself."""
    if CACHE.failed:
        return None
    signature = (torch.is_grad_enabled(), torch.is_autocast_enabled('cpu'), torch.is_autocast_enabled('cuda'),
                 *((a.shape, a.stride(), a.dtype, a.device) if isinstance(a, Tensor) else a for a in args))
    seen = CACHE.signatures.setdefault(key, set())
    if signature not in seen:
        limit = torch._dynamo.config.recompile_limit
        if len(seen) >= limit:
            if key not in CACHE.warned:
                CACHE.warned.add(key)
                warnings.warn(f"ops/compiled.py: {what} met more than {limit} input shapes; compiled only for "
                              f"the first {limit}, eager for the others (same values)")
            return None
        seen.add(signature)
    if key not in CACHE.functions:
        CACHE.functions[key] = torch.compile(fn, dynamic=False)
    try:
        return CACHE.functions[key](*args)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as err:
        CACHE.failed = True
        warnings.warn(f"ops/compiled.py: torch.compile of {what} failed ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''}); running the clustering eagerly (same values)")
        return None


def fused_failed() -> bool:
    """True once a compiled piece of the clustering failed in this process (every later fused call is eager)."""
    return CACHE.failed


def fused_by_default(x: Tensor) -> bool:
    """``TemporalClustering(fused=None)``: fuse on CUDA when Triton is installed (compiling for the CPU needs a
    C++ compiler and costs each process seconds, so the CPU stays eager unless asked)."""
    if not x.is_cuda:
        return False
    if CACHE.triton is None:
        CACHE.triton = importlib.util.find_spec('triton') is not None
    return CACHE.triton
