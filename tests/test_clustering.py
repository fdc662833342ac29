"""Tests of ops/clustering.py against per-video Python references written from docs/DESIGN.md §3."""
import itertools
import math
import shutil
import warnings
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ops import clustering, compiled
from ops.clustering import TemporalClustering, aggregate, cumulative_assign, slope_assign, uniform_assign
from ops.hamming import differing_signs, neighbour_hamming, sign_codes
from test_main import data, run_args  # noqa: F401 (data: the tiny Move4MNIST fixture)

ASSIGNERS = {'cumulative': cumulative_assign, 'slope': slope_assign}


# ---------------------------------------------------------------- per-video references (loops)

def ref_short(L, G):
    """L < G: frame i -> ceil(i*G/L), the last frame -> G-1 (module docstring)."""
    a = [-(-i * G // L) for i in range(L)]
    if L >= 2:
        a[-1] = G - 1
    return a


def ref_from_cuts(starts, L):
    """Sorted first frames of clusters 1..G-1 -> assignment of the L real frames."""
    return [sum(1 for s in starts if s <= i) for i in range(L)]


def ref_least_move(b, L, G):
    """Brute force: among all strictly increasing boundary sequences in [1, L-1], the one whose
    displacements (|b'_1 - b_1|, |b'_2 - b_2|, ...) are lexicographically smallest."""
    return min(itertools.combinations(range(1, L), G - 1),
               key=lambda s: tuple(abs(x - y) for x, y in zip(s, b)))


def ref_uniform(L, G):
    return ref_short(L, G) if L < G else [i * G // L for i in range(L)]


def ref_cumulative(d, L, G):
    if L < G:
        return ref_short(L, G)
    c = [Fraction(0)]
    for k in range(L - 1):
        c.append(c[-1] + Fraction(float(d[k])))
    if c[-1] == 0:
        return ref_uniform(L, G)
    raw = [min(G - 1, math.floor(G * ci / c[-1])) for ci in c]
    b = [sum(1 for a in raw if a < g) for g in range(1, G)]
    return ref_from_cuts(ref_least_move(b, L, G), L)


def ref_slope(d, L, G):
    if L < G:
        return ref_short(L, G)
    order = sorted(range(L - 1), key=lambda k: (-float(d[k]), k))
    return ref_from_cuts(sorted(k + 1 for k in order[:G - 1]), L)


def ref_raw_has_empty(d, L, G):
    c = np.concatenate([[0.0], np.cumsum(np.asarray(d[:L - 1], dtype=np.float64))])
    if L < G or c[-1] == 0:
        return False
    raw = np.minimum(G - 1, np.floor(G * c / c[-1])).astype(int)
    return len(set(raw.tolist())) < G


def random_dist(gen, n, t):
    kind = torch.randint(4, (1,), generator=gen).item()
    if kind == 0:  # smooth
        return torch.rand(n, t - 1, generator=gen)
    if kind == 1:  # quantised: many ties
        return torch.randint(0, 4, (n, t - 1), generator=gen).float() / 4
    if kind == 2:  # sparse spikes: jumps larger than one share
        spikes = torch.rand(n, t - 1, generator=gen) < 0.2
        return torch.where(spikes, torch.rand(n, t - 1, generator=gen), 0.0)
    return torch.rand(n, t - 1, generator=gen) ** 8  # heavy-tailed


def check_properties(a, L, G, T):
    real, pad = a[:L], a[L:]
    assert all(p == G - 1 for p in pad), a
    assert all(x <= y for x, y in zip(real, real[1:])), a
    assert real[0] == 0, a
    if L >= G:
        assert real[-1] == G - 1 and set(real) == set(range(G)), a
    else:
        assert all(x < y for x, y in zip(real, real[1:])), a
        assert L == 1 or real[-1] == G - 1, a


# ---------------------------------------------------------------- assignments

def test_random_assignments_match_references_and_properties():
    gen = torch.Generator().manual_seed(0)
    fixes = 0
    for _ in range(150):
        n = 4
        t = int(torch.randint(1, 13, (1,), generator=gen))
        G = int(torch.randint(1, 7, (1,), generator=gen))
        lengths = torch.randint(1, t + 1, (n,), generator=gen)
        dist = random_dist(gen, n, t)
        out = {name: fn(dist, G, lengths) for name, fn in ASSIGNERS.items()}
        out['uniform'] = uniform_assign(n, t, G, lengths)
        for row in range(n):
            L, d = int(lengths[row]), dist[row].tolist()
            refs = {'cumulative': ref_cumulative(d, L, G), 'slope': ref_slope(d, L, G),
                    'uniform': ref_uniform(L, G)}
            fixes += ref_raw_has_empty(d, L, G)
            for name, a in out.items():
                assert a.dtype == torch.int64 and a.shape == (n, t)
                got = a[row].tolist()
                assert got[:L] == refs[name], (name, L, G, d)
                check_properties(got, L, G, t)
    assert fixes > 20  # the empty-cluster repair was exercised against the brute force


def test_slope_recovers_planted_change_points():
    gen = torch.Generator().manual_seed(1)
    dist = torch.rand(3, 19, generator=gen) * 0.1
    dist[:, [4, 9, 15]] = 0.9
    expected = [0] * 5 + [1] * 5 + [2] * 6 + [3] * 4
    assert (slope_assign(dist, 4) == torch.tensor(expected)).all()


def test_cumulative_recovers_equally_spaced_equal_jumps():
    dist = torch.zeros(2, 19)
    dist[:, [3, 8, 13]] = 0.3  # not a dyadic number: exactness of the share boundaries matters
    expected = [0] * 4 + [1] * 5 + [2] * 5 + [3] * 6
    assert (cumulative_assign(dist, 4) == torch.tensor(expected)).all()


@pytest.mark.parametrize('h', [0.1, 0.3, 0.7, 0.9, 1 / 3, 1 / 7])
@pytest.mark.parametrize('G', [4, 5, 7, 16])
def test_cumulative_constant_distance_cuts_exactly_on_shares(h, G):
    # C_i = i*h, L-1 = 3G steps: frame i -> min(G-1, i // 3); float division would misplace
    # frames lying exactly on a share boundary (e.g. h=0.3, G=7).
    got = cumulative_assign(torch.full((1, 3 * G), h), G)[0].tolist()
    assert got == [min(G - 1, i // 3) for i in range(3 * G + 1)]


@pytest.mark.parametrize('dist, expected', [
    ([0, 0, 0, 0.9, 0, 0, 0, 0, 0.1], [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]),  # pushed right
    ([0, 0, 0, 0, 0, 0, 0, 0, 1.0], [0] * 7 + [1, 2, 3]),                # near the end: moved left
    ([1.0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 2] + [3] * 7),               # at the start
])
def test_cumulative_jump_larger_than_one_share(dist, expected):
    assert cumulative_assign(torch.tensor([dist]), 4)[0].tolist() == expected


def test_zero_distance_is_uniform():
    lengths = torch.tensor([10, 7, 3, 1])
    got = cumulative_assign(torch.zeros(4, 9), 4, lengths)
    assert (got == uniform_assign(4, 10, 4, lengths)).all()
    assert got[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]


def test_slope_ties_go_to_earlier_k():
    assert slope_assign(torch.tensor([[0.5, 0.2, 0.5, 0.5]]), 3)[0].tolist() == [0, 1, 1, 2, 2]
    assert slope_assign(torch.zeros(1, 7), 4)[0].tolist() == [0, 1, 2, 3, 3, 3, 3, 3]
    gen = torch.Generator().manual_seed(6)
    dist = torch.randint(0, 3, (2, 199), generator=gen).float() / 2  # long rows of many ties
    got = slope_assign(dist, 16)
    for row in range(2):
        assert got[row].tolist() == ref_slope(dist[row].tolist(), 200, 16)


def test_uniform_is_equal_chunks():
    for L, G in [(12, 4), (16, 8), (32, 16), (8, 8), (5, 1)]:
        assert uniform_assign(1, L, G)[0].tolist() == [i // (L // G) for i in range(L)]


def test_short_videos_repeat_frames_evenly():
    # L = 2, G = 5: cluster g takes frame floor(2g/5) -> frames 0, 0, 0, 1, 1
    x = torch.arange(6.).reshape(1, 6, 1) * 10
    lengths = torch.tensor([2])
    for name in ['uniform', 'slope', 'cumulative']:
        a = (uniform_assign(1, 6, 5, lengths) if name == 'uniform'
             else ASSIGNERS[name](torch.rand(1, 5), 5, lengths))
        assert aggregate(x, a, 5, lengths).flatten().tolist() == [0, 0, 0, 10, 10], name
    # every L < G, also with T < G: cluster g is frame floor(g*L/G)
    T, G = 4, 7
    lengths = torch.tensor([1, 2, 3, 4])
    x = torch.arange(T * 4.).reshape(4, T, 1)
    dist = torch.rand(4, T - 1)
    for a in [slope_assign(dist, G, lengths), cumulative_assign(dist, G, lengths),
              uniform_assign(4, T, G, lengths)]:
        out = aggregate(x, a, G, lengths)[..., 0]
        for row, L in enumerate(lengths.tolist()):
            assert out[row].tolist() == [x[row, g * L // G, 0].item() for g in range(G)]


# ---------------------------------------------------------------- distances

@pytest.mark.parametrize('shape', [(2, 3, 5, 3), (2, 3, 8, 4, 2), (1, 2, 1)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_sign_codes_match_numpy_packbits(shape, layout):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=gen)
    x.view(-1)[::5] = 0.0  # zero is not > 0
    if layout == 'channels_last' and x.dim() == 5:
        x = x.flatten(0, 1).to(memory_format=torch.channels_last).unflatten(0, shape[:2])
    expected = np.packbits(x.reshape(*shape[:2], -1).numpy() > 0, axis=-1)
    got = sign_codes(x)
    assert got.dtype == torch.uint8 and got.shape == expected.shape
    assert (got.numpy() == expected).all()


def test_neighbour_hamming_is_fraction_of_differing_signs():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 4, 5, 7, generator=gen)
    lengths = torch.tensor([6, 4, 1])
    s = x.reshape(3, 6, -1).numpy() > 0
    expected = (s[:, 1:] != s[:, :-1]).mean(-1)
    expected[1, 3:] = 0
    expected[2, :] = 0
    got = neighbour_hamming(x, lengths)
    assert got.dtype == torch.float32 and got.shape == (3, 5)
    counts = (s[:, 1:] != s[:, :-1]).sum(-1).astype(np.float32)
    assert (got.numpy()[0] == counts[0] / np.float32(140)).all()  # correctly rounded division
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert ((got >= 0) & (got <= 1)).all()


def _compile_or_skip(device: str) -> None:
    if device == 'cpu' and shutil.which('g++') is None and shutil.which('c++') is None:
        pytest.skip("torch.compile on the CPU needs a C++ compiler")
    if device == 'cuda' and not compiled.fused_by_default(torch.zeros(1, device='cuda')):
        pytest.skip("torch.compile on CUDA needs Triton")


COMPILE_DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture
def fresh_compile(monkeypatch):
    """Nothing compiled yet, and torch raising (not quietly running eagerly) if it ever keeps too many graphs:
    so every fused call of the test really runs compiled code. torch's settings are patched with torch's own
    ``config.patch``: pytest >= 9.2's ``monkeypatch.undo`` deletes a config attribute instead of restoring it."""
    torch._dynamo.reset()
    monkeypatch.setattr(compiled, 'CACHE', compiled.CompileCache())
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield
    torch._dynamo.reset()


@pytest.mark.parametrize('device', COMPILE_DEVICES)
def test_fused_distances_equal_the_packed_codes(device, fresh_compile):
    """--fused_assign: the compiled pass gives bit-identical distances, so the same clusters."""
    _compile_or_skip(device)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, 7, 5, 3, 3, generator=gen).relu().to(device)  # D = 45: not a whole number of bytes
    x[0, 2] = x[0, 3]  # a zero distance
    lengths = torch.tensor([7, 4, 1], device=device)
    for lens in (None, lengths):
        assert torch.equal(neighbour_hamming(x, lens, fused=True), neighbour_hamming(x, lens))
    s = x.reshape(3, 7, -1) > 0
    assert torch.equal(differing_signs(x), (s[:, 1:] != s[:, :-1]).sum(-1))  # the function compiled, eager
    fused, plain = TemporalClustering('cumulative', 3, fused=True), TemporalClustering('cumulative', 3, fused=False)
    frames = x.reshape(21, 5, 3, 3)
    assert torch.equal(fused(frames, 7, lengths), plain(frames, 7, lengths))
    assert torch.equal(fused.last_assign, plain.last_assign)
    assert not compiled.fused_failed()  # the compiled pass ran: no fallback hid a difference
    half = x.to(torch.float16)
    assert torch.equal(neighbour_hamming(half, lengths, fused=True), neighbour_hamming(half, lengths))
    single = x[:, :1]  # T = 1: no neighbours
    assert neighbour_hamming(single, fused=True).shape == (3, 0)
    assert not compiled.fused_failed()


@pytest.mark.parametrize('device', COMPILE_DEVICES)
@pytest.mark.parametrize('method', ['cumulative', 'slope'])
def test_fused_rule_equals_the_eager_rule(method, device, fresh_compile):
    """The compiled rule gives the same assignment, ties, padding, short videos and zero distances included, and
    the compiled mean weights the same means (on CUDA: Triton's kernels, whose float32 division may be inexact)."""
    _compile_or_skip(device)
    gen = torch.Generator().manual_seed(8)
    T, G = 12, 4
    lengths = torch.tensor([12, 9, 3, 1, 12, 4], device=device)
    counts = torch.randint(0, 6, (6, T - 1), generator=gen)  # few values: many ties
    counts[4] = 0  # all distances zero: uniform
    counts[0, 3:6] = torch.tensor([5, 0, 5])  # exact share boundaries
    dist = (counts.float() / torch.tensor(45.)).to(device)
    for lens in (None, lengths):
        got = clustering.assign_rule(dist, G, method, lens, fused=True)
        assert torch.equal(got, clustering.assign_rule(dist, G, method, lens)), lens
    short = torch.rand(2, 2, generator=gen).to(device)  # T = 3 < G
    two = torch.tensor([3, 2], device=device)
    assert torch.equal(clustering.assign_rule(short, G, method, two, fused=True),
                       clustering.assign_rule(short, G, method, two))
    for seed in range(3):  # ResNet-50's layer1 at 224 px: D = 802816 (~2**19.6), 32 frames into 8 and 16
        g = torch.Generator().manual_seed(seed)
        counts = torch.randint(0, 802816 // 2, (16, 31), generator=g)
        counts[:, ::3] = counts[:, :1]  # repeated values: ties between jumps
        dist = (counts.float() / torch.tensor(802816.)).to(device)
        for k in (8, 16):
            assert torch.equal(clustering.assign_rule(dist, k, method, fused=True),
                               clustering.assign_rule(dist, k, method)), (seed, k)
    x = torch.randn(6, T, 3, generator=gen).to(device)
    for lens in (None, lengths):  # the compiled mean weights, empty clusters of short videos included
        a = clustering.assign_rule(dist[:6, :T - 1], G, method, lens)
        w = compiled.run_compiled('cluster_weights', clustering.cluster_weights, 'the weights', a, G, lens)
        assert torch.equal(w, clustering.cluster_weights(a, G, lens))
        assert torch.equal(aggregate(x, a, G, lens, fused=True), aggregate(x, a, G, lens))
    module = TemporalClustering(method, G, fused=True)
    frames = torch.randn(6 * T, 3, 2, 2, generator=gen).to(device)
    assert torch.equal(module(frames, T, lengths), TemporalClustering(method, G, fused=False)(frames, T, lengths))
    assert not compiled.fused_failed()


def test_more_shapes_than_torch_keeps_graphs_for_run_eagerly_with_a_warning(fresh_compile):
    """Past recompile_limit input signatures the new ones run eagerly (same values), with one warning, and the
    compiled ones stay compiled (torch would otherwise run them all eagerly without a word)."""
    _compile_or_skip('cpu')
    with torch._dynamo.config.patch(recompile_limit=2):
        gen = torch.Generator().manual_seed(10)
        dists = [torch.rand(2, t, generator=gen) for t in (7, 8, 9, 7)]
        rule = clustering.cumulative_assign
        for i, d in enumerate(dists):
            if i == 2:
                with pytest.warns(UserWarning, match='more than 2 input shapes'):
                    got = clustering.assign_rule(d, 3, 'cumulative', fused=True)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter('error')  # one warning only, and none for the shapes already compiled
                    got = clustering.assign_rule(d, 3, 'cumulative', fused=True)
            assert torch.equal(got, rule(d, 3))
        # two graphs kept, the third shape eager, and the first shape again compiled (a recompile would raise here)
        assert not compiled.fused_failed() and len(compiled.CACHE.signatures['cumulative_assign']) == 2
    # the grad mode is part of a signature, as it is of torch's guards: one graph, the other mode eager
    x, a = torch.randn(2, 9, 3, requires_grad=True), rule(dists[1], 3)  # 9 frames: 8 distances
    with torch._dynamo.config.patch(recompile_limit=1):
        first = aggregate(x, a, 3, fused=True)
        with torch.no_grad(), pytest.warns(UserWarning, match='more than 1 input shapes'):
            second = aggregate(x, a, 3, fused=True)
    assert torch.equal(first, second) and first.requires_grad and not compiled.fused_failed()


def test_a_failing_compiled_rule_or_weights_fall_back(monkeypatch):
    """A compiled rule or weights that fail: one warning, the eager values, and nothing compiled afterwards."""
    dist = torch.rand(3, 9, generator=torch.Generator().manual_seed(9))
    x = torch.randn(3, 10, 4)

    def broken(*args):
        raise RuntimeError("no compiler")
    for key in ('cumulative_assign', 'cluster_weights'):
        monkeypatch.setattr(compiled, 'CACHE', compiled.CompileCache(functions={key: broken}))
        with pytest.warns(UserWarning, match='torch.compile of the .* failed .RuntimeError: no compiler.'):
            got = (clustering.assign_rule(dist, 4, 'cumulative', fused=True) if key == 'cumulative_assign'
                   else aggregate(x, cumulative_assign(dist, 4), 4, fused=True))
        want = cumulative_assign(dist, 4) if key == 'cumulative_assign' else aggregate(x, cumulative_assign(dist, 4), 4)
        assert torch.equal(got, want) and compiled.fused_failed()
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # eager from now on, without a second warning
            assert torch.equal(neighbour_hamming(x, fused=True), neighbour_hamming(x))


def test_fused_is_off_on_the_cpu_by_default_and_a_failing_compiler_falls_back(monkeypatch):
    x = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(6))
    assert not compiled.fused_by_default(x)
    assert TemporalClustering('slope', 2).fused is None  # decided per call: eager here

    def broken(t):
        raise RuntimeError("no compiler\nmore")
    monkeypatch.setattr(compiled, 'CACHE', compiled.CompileCache(functions={'differing_signs': broken}))
    with pytest.warns(UserWarning, match='torch.compile of the sign distances failed .RuntimeError: no compiler.'):
        got = neighbour_hamming(x, fused=True)
    assert torch.equal(got, neighbour_hamming(x)) and compiled.CACHE.failed


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2 * 9, 8, 3, 3, generator=gen).to(dtype)
    lengths = torch.tensor([9, 6])
    ref = neighbour_hamming(x.float().reshape(2, 9, 8, 3, 3), lengths)
    got = neighbour_hamming(x.reshape(2, 9, 8, 3, 3), lengths)
    assert got.dtype == torch.float32 and torch.equal(got, ref)
    for method in ['uniform', 'slope', 'cumulative']:
        module = TemporalClustering(method, 4)
        out = module(x, 9, lengths)
        assert out.dtype == dtype and out.shape == (8, 8, 3, 3)
        expected = module(x.float(), 9, lengths)
        torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


# ---------------------------------------------------------------- aggregation and padding

def test_aggregate_equals_hand_computed_mean():
    x = torch.tensor([[[1., 2.], [3., 4.], [5., 6.], [7., 8.], [9., 10.], [99., 99.]]])
    assign = torch.tensor([[0, 0, 1, 2, 2, 2]])
    out = aggregate(x, assign, 3, torch.tensor([5]))  # frame 5 is padding
    assert out.tolist() == [[[2., 3.], [5., 6.], [8., 9.]]]
    out = aggregate(x, assign, 3)  # without lengths frame 5 is real
    torch.testing.assert_close(out, torch.tensor([[[2., 3.], [5., 6.], [115 / 3, 39.]]]))


@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_padding_is_ignored(method):
    gen = torch.Generator().manual_seed(4)
    T, G, lengths = 11, 4, [11, 7, 4, 2]
    videos = [torch.randn(L, 6, 3, 3, generator=gen) for L in lengths]
    padded = torch.randn(len(lengths), T, 6, 3, 3, generator=gen) * 5  # garbage padding
    for row, v in enumerate(videos):
        padded[row, :len(v)] = v
    module = TemporalClustering(method, G)
    lengths_t = torch.tensor(lengths)
    out = module(padded.reshape(-1, 6, 3, 3), T, lengths_t).reshape(len(lengths), G, 6, 3, 3)
    batch_assign = module.last_assign
    dist = neighbour_hamming(padded, lengths_t)
    for row, v in enumerate(videos):
        L = len(v)
        alone = module(v, L)
        torch.testing.assert_close(out[row], alone.reshape(G, 6, 3, 3))
        assert torch.equal(batch_assign[row, :L], module.last_assign[0])
        assert (batch_assign[row, L:] == G - 1).all()
        torch.testing.assert_close(dist[row, :L - 1], neighbour_hamming(v[None])[0])
        assert (dist[row, L - 1:] == 0).all()


@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_gradient_reaches_every_real_frame_only(method):
    gen = torch.Generator().manual_seed(5)
    T, G, lengths = 10, 4, torch.tensor([10, 6, 3])
    x = torch.randn(3 * T, 2, 2, 2, generator=gen, requires_grad=True)
    module = TemporalClustering(method, G)
    module(x, T, lengths).sum().backward()
    grad = x.grad.reshape(3, T, -1)
    a = module.last_assign
    assert not a.requires_grad
    for row, L in enumerate(lengths.tolist()):
        sizes = Counter(a[row, :L].tolist())
        for i in range(T):
            if i >= L:
                expected = 0.0
            elif L >= G:
                expected = 1.0 / sizes[a[row, i].item()]
            else:  # frame i is repeated in every cluster g with floor(g*L/G) == i
                expected = float(sum(1 for g in range(G) if g * L // G == i))
            assert (grad[row, i] == expected).all(), (row, i)
        assert (grad[row, :L] != 0).all()


# ---------------------------------------------------------------- batching and the module

class OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def count_ops(method, n):
    gen = torch.Generator().manual_seed(n)
    T, G = 12, 4
    x = torch.randn(n * T, 16, 3, 3, generator=gen, requires_grad=True)
    lengths = torch.randint(1, T + 1, (n,), generator=gen)
    with OpCounter() as counter:
        TemporalClustering(method, G)(x, T, lengths).sum().backward()
    return counter.ops


@pytest.mark.parametrize('method', ['uniform', 'slope', 'cumulative'])
def test_op_count_does_not_depend_on_batch_size(method):
    small, large = count_ops(method, 2), count_ops(method, 8)
    assert small == large
    syncs = {'aten._local_scalar_dense.default', 'aten.nonzero.default', 'aten.item.default'}
    assert not syncs & set(small)


def test_module_contract():
    with pytest.raises(ValueError, match='unknown clustering method'):
        TemporalClustering('kmeans', 4)
    module = TemporalClustering('cumulative', 8)
    assert 'cumulative' in repr(module) and 'num_clusters=8' in repr(module)
    with pytest.raises(ValueError, match='multiple of num_frames'):
        module(torch.randn(10, 2, 2, 2), 3)
    x = torch.randn(2 * 8, 2, 2, 2)
    assert torch.equal(module(x, 8), x)  # G == T: every frame is its own cluster
    one = TemporalClustering('slope', 1)
    torch.testing.assert_close(one(x, 8), x.reshape(2, 8, 2, 2, 2).mean(1))
    assert one.last_assign.shape == (2, 8) and (one.last_assign == 0).all()


# ---------------------------------------------------------------- the rule registry

@pytest.fixture
def leading_rule(monkeypatch):
    """A toy rule registered in this test alone (the registry is a copy, restored afterwards): frames 0..G-2 each
    alone, the others in cluster G-1 (for videos of at least G frames). Returns the distances of every call."""
    monkeypatch.setattr(clustering, '_RULES', dict(clustering._RULES))
    calls = []

    @clustering.register_rule('leading')
    def leading_assign(dist, G, lengths=None):
        calls.append(dist.clone())
        t = dist.shape[1] + 1
        return torch.arange(t, device=dist.device).clamp(max=G - 1).expand(dist.shape[0], t).clone()
    return calls


def test_a_rule_registered_here_trains_through_main(leading_rule, data, tmp_path):
    import main as train_main
    from ops.checkpoint import load_checkpoint
    assert clustering.rule_names()[-1] == 'leading'
    argv = run_args(data, tmp_path, '--epochs', '1', '--cluster', 'leading', '--frames', '8')
    result = train_main.main(argv)
    assert result['count'] == 4 and result['loss'] == result['loss']  # validated, finite
    # 2 training batches and 1 validation batch of 4 videos, each with the distances of its 8 frames
    assert len(leading_rule) == 3 and all(d.shape == (4, 7) for d in leading_rule)
    assert all((d > 0).any() for d in leading_rule)  # real distances, not the placeholder of distance-free rules
    assert load_checkpoint(str(tmp_path / 'ckpt' / 'run' / 'ckpt.pth.tar'))['args']['cluster'] == 'leading'


def test_the_rule_decides_the_assignment(leading_rule):
    module = TemporalClustering('leading', 3)
    out = module(torch.arange(2 * 6 * 2.).reshape(12, 2, 1, 1), 6)
    assert module.last_assign.tolist() == [[0, 1, 2, 2, 2, 2]] * 2
    assert out[:, 0, 0, 0].tolist() == [0., 2., 7., 12., 14., 19.]  # frames 0, 1, mean of 2..5 per video


def test_the_chunked_path_takes_the_rule_from_the_registry(leading_rule):
    from test_chunked import make_pair
    plain, chunked = make_pair('leading', 3)  # 10 frames into 3 clusters, chunks of 3 frames
    x = torch.randn(2, 10 * 3, 16, 16, dtype=torch.float64)
    assert torch.allclose(plain(x), chunked(x), atol=1e-10)
    assert len(leading_rule) == 2 and torch.equal(leading_rule[0], leading_rule[1])  # the same distances
    assert chunked.clustering.last_assign.tolist() == [[0, 1] + [2] * 8] * 2


def test_a_rule_without_distances_gets_none_computed(monkeypatch):
    def no_call(*args, **kwargs):
        raise AssertionError("neighbour_hamming called for a rule without distances")
    monkeypatch.setattr(clustering, 'neighbour_hamming', no_call)
    assert not clustering.get_rule('uniform').needs_distances
    lengths = torch.tensor([9, 5])
    got = TemporalClustering('uniform', 4).assign(torch.randn(18, 3, 2, 2), 9, lengths)
    assert torch.equal(got, uniform_assign(2, 9, 4, lengths))


def test_unknown_or_taken_rule_names_are_errors(data, tmp_path):
    import main as train_main
    from ops.models import TSN
    for make in (lambda: clustering.get_rule('kmeans'), lambda: TemporalClustering('kmeans', 4),
                 lambda: clustering.assign_rule(torch.zeros(1, 3), 2, 'kmeans'),
                 lambda: TSN(4, 4, 'RGB', base_model='resnet18', pretrain='scratch', cluster='kmeans',
                             num_frames=8)):
        with pytest.raises(ValueError, match=r"'kmeans'.*\('uniform', 'slope', 'cumulative'\)"):
            make()
    with pytest.raises(SystemExit):  # argparse: invalid choice, exit status 2
        train_main.main(run_args(data, tmp_path, '--cluster', 'kmeans'))
    for taken in ('slope', 'none'):
        with pytest.raises(ValueError, match=f"clustering rule '{taken}' is taken"):
            clustering.register_rule(taken)(cumulative_assign)
    assert clustering.rule_names() == ('uniform', 'slope', 'cumulative')
