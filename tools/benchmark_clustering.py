"""Time the pieces of the temporal clustering (ops/clustering.py) on one activation tensor.

    python tools/benchmark_clustering.py                         # ResNet-50 layer1 at 224 px: 32 x 256x56x56
    python tools/benchmark_clustering.py --step_ms 4238          # also its share of a measured training step
    python tools/benchmark_clustering.py --device cuda --dtype float16 --videos 8

Each row is the time per call after one warm-up (CPU: median of --repeat calls; CUDA: --repeat calls queued
back to back, then one sync): sign codes, Hamming distances from the codes, each registered rule that reads
distances (ops/clustering.py: the slope and cumulative rules), the mean (``aggregate``) forward and forward +
backward, and the whole clustering forward + backward (``TemporalClustering``, whose assignment has no gradient)
for each rule; with --fused also the compiled distances, rules and mean weights (main.py --fused_assign), and
the clustering with only its distances compiled (``fuse_rule=False``). Random ReLU-like activations (half
zeros).
It prints figures and asserts nothing.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, List, Optional

import torch

from ops import clustering as C
from ops import compiled, hamming as H
from ops.runtime import select_device


def ms_per_call(fn: Callable[[], object], repeat: int, device: torch.device) -> float:
    """Milliseconds per call of ``fn`` after one warm-up call: on the CPU the median of ``repeat`` calls; on
    CUDA ``repeat`` calls queued back to back and one sync (as in a training step, where the host runs ahead
    of the GPU), divided by ``repeat``."""
    def sync():
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
    fn()
    sync()
    if device.type == 'cuda':
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        sync()
        return (time.perf_counter() - t0) * 1e3 / repeat
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--videos', type=int, default=1)
    p.add_argument('--frames', type=int, default=32)
    p.add_argument('--channels', type=int, default=256, help="ResNet-50 layer1: 256; ResNet-18: 64")
    p.add_argument('--size', type=int, default=56, help="feature map side (224 px input: 56)")
    p.add_argument('--clusters', type=int, default=8)
    p.add_argument('--repeat', type=int, default=5)
    p.add_argument('--device', default='cpu', choices=['auto', 'cpu', 'cuda'])
    p.add_argument('--dtype', default='float32', choices=['float32', 'float16', 'bfloat16'])
    p.add_argument('--step_ms', type=float, default=None, help="a training step's time, for the share column")
    p.add_argument('--fused', action='store_true',
                   help="also time the torch.compile'd distances, rules and mean weights (main.py --fused_assign); "
                        "the warm-up compiles")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[tuple]:
    args = parse_args(argv)
    device = select_device(args.device)
    dtype = getattr(torch, args.dtype)
    n, t, g = args.videos, args.frames, args.clusters
    gen = torch.Generator(device='cpu').manual_seed(0)
    x = torch.randn(n, t, args.channels, args.size, args.size, generator=gen).relu_().to(device, dtype)
    bits = args.channels * args.size * args.size
    codes = H.sign_codes(x)
    dist = H.hamming_from_codes(codes, bits)
    distance_rules = [m for m in C.rule_names() if C.get_rule(m).needs_distances]
    assign = C.cumulative_assign(dist, g)
    leaf = x.clone().requires_grad_()
    upstream = torch.randn(n, g, *x.shape[2:], generator=gen).to(device, dtype)  # a dense gradient, as layer2's

    def mean_forward_backward(fused: bool = False) -> Callable[[], None]:
        def run():
            leaf.grad = None  # as a training step after zero_grad(set_to_none=True): no accumulation pass timed
            C.aggregate(leaf, assign, g, fused=fused).backward(upstream)
        return run

    def whole(method: str, fused: bool = False, rule: bool = True) -> Callable[[], None]:
        module = C.TemporalClustering(method, g, fused=fused, fuse_rule=rule)
        frames = leaf.reshape(n * t, *x.shape[2:])

        def run():
            leaf.grad = None
            module(frames, t).backward(upstream.reshape(n * g, *x.shape[2:]))
        return run

    rows = [('sign_codes', ms_per_call(lambda: H.sign_codes(x), args.repeat, device)),
            ('hamming_from_codes', ms_per_call(lambda: H.hamming_from_codes(codes, bits), args.repeat, device))]
    rows += [(f'{m}_assign', ms_per_call(lambda m=m: C.assign_rule(dist, g, m), args.repeat, device))
             for m in distance_rules]
    rows += [('aggregate forward', ms_per_call(lambda: C.aggregate(x, assign, g), args.repeat, device)),
             ('aggregate forward + backward', ms_per_call(mean_forward_backward(), args.repeat, device))]
    rows += [(f'{m} clustering forward + backward', ms_per_call(whole(m), args.repeat, device))
             for m in C.rule_names()]
    if args.fused:
        rows += [(f'{m}_assign, fused', ms_per_call(lambda m=m: C.assign_rule(dist, g, m, fused=True), args.repeat,
                                                    device)) for m in distance_rules]
        rows += [('neighbour_hamming, fused', ms_per_call(lambda: H.neighbour_hamming(x, fused=True), args.repeat,
                                                        device)),
                 ('neighbour_hamming, eager', ms_per_call(lambda: H.neighbour_hamming(x), args.repeat, device))]
        rows += [(f'{m} clustering forward + backward, fused', ms_per_call(whole(m, True), args.repeat, device))
                 for m in distance_rules]
        rows += [('aggregate forward + backward, fused weights', ms_per_call(mean_forward_backward(True), args.repeat,
                                                                            device)),
                 ('cumulative clustering forward + backward, fused distances only',
                  ms_per_call(whole('cumulative', True, rule=False), args.repeat, device))]
    print(f"{n} video(s) x {t} frames x {args.channels}x{args.size}x{args.size} {args.dtype} on {device}, "
          f"{g} clusters, {torch.get_num_threads()} CPU threads; "
          + (f"mean of {args.repeat} queued calls" if device.type == 'cuda' else f"median of {args.repeat}"))
    print('| piece | ms |' + (' share of a step |' if args.step_ms else ''))
    print('|---|---|' + ('---|' if args.step_ms else ''))
    for name, ms in rows:
        share = f' {100 * ms / args.step_ms:.2f}% |' if args.step_ms else ''
        print(f'| {name} | {ms:.2f} |{share}')
    if args.fused:  # the compiled pieces give the eager values on these tensors too (the clusters depend on it)
        same = (torch.equal(H.neighbour_hamming(x, fused=True), dist)
                and all(torch.equal(C.assign_rule(dist, g, m, fused=True), C.assign_rule(dist, g, m))
                        for m in distance_rules)
                and torch.equal(C.aggregate(x, assign, g, fused=True), C.aggregate(x, assign, g)))
        print(f"compiled == eager (distances, every rule, means): {'yes' if same else 'NO'}")
    if compiled.fused_failed():
        print("WARNING: torch.compile of the clustering failed: the fused rows measured the eager path")
    return rows


if __name__ == '__main__':
    main()
