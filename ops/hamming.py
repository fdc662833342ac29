"""Neighbour Hamming distances between the signs of frame activations (paper Sec. 3.3, the terms of Eq. 8).

Each frame's activations are binarized by sign; the distance of frames k and k+1 is the fraction of their sign
bits that differ. ``x`` and ``lengths`` follow the conventions of ops/clustering.py (its module docstring);
pairs that reach into the padding get distance 0. Two ways give the same integers: packed codes, xor and a
popcount (eager, and chunk by chunk in ops/chunked.py), or one compiled reduction (``differing_signs``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ops.compiled import run_compiled

_PACK_MSB_FIRST = sum(2 ** (63 - 9 * j) for j in range(8)) - 2 ** 64  # 0x8040201008040201 as int64


def lengths_or_full(lengths: Tensor | None, n: int, t: int, device: torch.device) -> Tensor:
    """``lengths`` as int64 on ``device``, or ``(N,)`` filled with T where it is None."""
    if lengths is None:
        return torch.full((n,), t, dtype=torch.long, device=device)
    return lengths.to(device=device, dtype=torch.long)


def sign_codes(x: Tensor) -> Tensor:
    """Binarize activations by sign and pack 8 bits per byte (paper Sec. 3.3, "binarize").

    Bit j of a frame is ``x.flatten()[j] > 0``; bits are packed most significant bit first,
    as ``numpy.packbits``, and the last byte is padded with zero bits.

    Args:
        x: ``(N, T, ...)`` activations of any floating dtype.

    Returns:
        ``(N, T, ceil(D / 8))`` uint8 codes.
    """
    n, t = x.shape[:2]
    bits = (x > 0).reshape(n, t, -1).view(torch.uint8)  # one byte, 0 or 1, per activation
    if bits.shape[-1] % 8:
        bits = F.pad(bits, (0, -bits.shape[-1] % 8))
    # Gather each 8 bytes into one byte in a single pass: in the (little-endian) int64 word byte j
    # holds its bit at 8j; times sum_j 2**(63 - 9j) moves it to bit 63 - j, no two partial
    # products share a bit, and the product wraps modulo 2**64 (in place: no extra memory).
    words = bits.view(torch.int64).mul_(_PACK_MSB_FIRST).bitwise_right_shift_(56)
    return words.to(torch.uint8)


def neighbour_hamming(x: Tensor, lengths: Tensor | None = None, fused: bool = False, packed: bool = True) -> Tensor:
    """Hamming distance between the signs of neighbouring frames (paper Sec. 3.3, Eq. 8 terms).

    ``d_k = H(x_k, x_{k+1}) / D``, computed as xor of the packed codes and a popcount over 64-bit words;
    with ``fused``, as one compiled pass over the activations (``differing_signs``): the same integers;
    without ``packed``, as ``differing_signs`` run eagerly (no int64 bit-packing ``view``, which ONNX lacks):
    the same integers again, so bit-identical distances.

    Args:
        x: ``(N, T, ...)`` activations (float16/bfloat16/float32).
        lengths: ``(N,)`` int64 real frames per video, or None.
        fused: use the ``torch.compile``d pass (Triton on CUDA, C++ on the CPU; the first call compiles).
        packed: False counts the differing signs as booleans (export: ``tools/export.py``); ignored if fused.

    Returns:
        ``(N, T-1)`` float32 fraction of differing sign bits in [0, 1]; 0 where ``k >= L-1``.
    """
    if fused:
        counts = run_compiled('differing_signs', differing_signs, 'the sign distances', x)
        if counts is not None:
            return _normalise(counts, math.prod(x.shape[2:]), lengths)
    if not packed:
        return _normalise(differing_signs(x), math.prod(x.shape[2:]), lengths)
    return hamming_from_codes(sign_codes(x), math.prod(x.shape[2:]), lengths)


def differing_signs(x: Tensor) -> Tensor:
    """``(N, T, ...)`` activations -> ``(N, T-1)`` int64 count of sign bits that differ between neighbours.

    Written for ``torch.compile``: sign, comparison and count fuse into one reduction that reads each
    activation (about) once and writes only the counts, instead of the eager path's passes over a byte per
    activation (sign, pack, xor, popcount). Eager, it is slower than ``sign_codes`` + ``hamming_from_codes``.
    """
    signs = (x > 0).flatten(2)
    return (signs[:, 1:] != signs[:, :-1]).sum(-1)


def hamming_from_codes(codes: Tensor, num_bits: int, lengths: Tensor | None = None) -> Tensor:
    """``neighbour_hamming`` from packed codes: ``(N, T, B)`` uint8 -> ``(N, T-1)`` float32.

    Used directly when the codes were computed chunk by chunk (``ops/chunked.py``).

    Args:
        codes: ``(N, T, ceil(num_bits / 8))`` uint8 from ``sign_codes``.
        num_bits: D, the number of activations per frame.
        lengths: ``(N,)`` int64 real frames per video, or None.
    """
    differ = codes[:, 1:] ^ codes[:, :-1]
    counts = _popcount64(F.pad(differ, (0, -differ.shape[-1] % 8)).view(torch.int64)).sum(-1)
    return _normalise(counts, num_bits, lengths)


def _normalise(counts: Tensor, num_bits: int, lengths: Tensor | None) -> Tensor:
    """``(N, T-1)`` differing bits -> fractions of ``num_bits``, 0 for pairs that reach into the padding."""
    n, t = counts.shape[0], counts.shape[1] + 1
    length = lengths_or_full(lengths, n, t, counts.device)
    k = torch.arange(t - 1, device=counts.device)
    # Divide by a device tensor: CUDA would multiply by the rounded reciprocal of a Python
    # scalar, and distances must be bit-identical on every device (ties decide the clusters).
    dist = counts.float() / torch.full((), num_bits, dtype=torch.float32, device=counts.device)
    return torch.where(k < (length - 1)[:, None], dist, 0.0)


def _popcount64(v: Tensor) -> Tensor:
    """Set bits of each int64 word (SWAR popcount, Hacker's Delight 5-2): ``(...)`` int64 -> ``(...)`` int64.

    Eight bytes per operation instead of a table look-up per byte. The arithmetic right shifts of negative
    words are harmless: every shift is masked, and the final byte sum (at most 64) is positive.
    """
    v = v - ((v >> 1) & 0x5555555555555555)
    v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333)
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0F
    return (v * 0x0101010101010101) >> 56
