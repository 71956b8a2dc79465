"""HEVC's in-loop deblocking filter on intra pictures (H.265 8.7.2), in floating point.

Edges lie on the 8-sample grid of each plane where a transform block ends (every intra edge has
boundary strength 2). All vertical edges of the picture are filtered first, then the horizontal ones
of the result, as HEVC does. Luma: per line, the edge is filtered when ``dp + dq < beta`` (HEVC
decides per 4-line segment from lines 0 and 3); the strong filter where both sides are flat and the
step is small, else the normal filter (``p0, q0``, and ``p1``/``q1`` on a flat side). Chroma (4:2:0:
on the 8x8 chroma grid): the chroma filter on ``p0, q0``. Decisions are masks (no gradient); the filters
and their clipping are piecewise linear, so the gradient flows through them.
"""

from __future__ import annotations

import torch
from torch import Tensor

GRID = 8


def _clip(x: Tensor, bound: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(x, bound), -bound)


def _luma(p: list[Tensor], q: list[Tensor], beta: Tensor, tc: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Filtered ``p0..p2`` and ``q0..q2`` from ``p0..p3``, ``q0..q3`` (each ``(N, P, H, E)``)."""
    p0, p1, p2, p3 = p
    q0, q1, q2, q3 = q
    dp, dq = (p2 - 2 * p1 + p0).abs().detach(), (q2 - 2 * q1 + q0).abs().detach()
    filtered = dp + dq < beta
    strong = filtered & (2 * (dp + dq) < beta / 4) & (((p3 - p0).abs() + (q0 - q3).abs()).detach() < beta / 8) & ((p0 - q0).abs().detach() < 2.5 * tc)
    strong_p = [
        p0 + _clip((p2 + 2 * p1 + 2 * p0 + 2 * q0 + q1) / 8 - p0, 2 * tc),
        p1 + _clip((p2 + p1 + p0 + q0) / 4 - p1, 2 * tc),
        p2 + _clip((2 * p3 + 3 * p2 + p1 + p0 + q0) / 8 - p2, 2 * tc),
    ]
    strong_q = [
        q0 + _clip((p1 + 2 * p0 + 2 * q0 + 2 * q1 + q2) / 8 - q0, 2 * tc),
        q1 + _clip((p0 + q0 + q1 + q2) / 4 - q1, 2 * tc),
        q2 + _clip((p0 + q0 + q1 + 3 * q2 + 2 * q3) / 8 - q2, 2 * tc),
    ]
    delta = (9 * (q0 - p0) - 3 * (q1 - p1)) / 16
    normal = filtered & ~strong & (delta.abs().detach() < 10 * tc)
    delta = _clip(delta, tc)
    side = (beta + beta / 2) / 8
    delta_p = torch.where(dp < side, _clip(((p2 + p0) / 2 - p1 + delta) / 2, tc / 2), torch.zeros_like(delta))
    delta_q = torch.where(dq < side, _clip(((q2 + q0) / 2 - q1 - delta) / 2, tc / 2), torch.zeros_like(delta))
    normal_p, normal_q = [p0 + delta, p1 + delta_p, p2], [q0 - delta, q1 - delta_q, q2]
    pick = lambda s, n, o: torch.where(strong, s, torch.where(normal, n, o))  # noqa: E731
    return [pick(s, n, o) for s, n, o in zip(strong_p, normal_p, p[:3])], [pick(s, n, o) for s, n, o in zip(strong_q, normal_q, q[:3])]


def _chroma(p: list[Tensor], q: list[Tensor], tc: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Filtered ``p0`` and ``q0`` from ``p0, p1``, ``q0, q1``."""
    delta = _clip(((q[0] - p[0]) * 4 + p[1] - q[1]) / 8, tc)
    return [p[0] + delta], [q[0] - delta]


def _vertical_edges(x: Tensor, edge_size: Tensor, ctu: int, beta: Tensor, tc: Tensor, luma: bool) -> Tensor:
    """Filter the vertical edges of ``x`` ``(N, P, H, W)``; ``edge_size`` ``(N, 1, H, W)``: the transform
    size at each sample (edges at multiples of ``max(size, 8)`` and of ``ctu``)."""
    width = x.shape[-1]
    edges = torch.arange(GRID, width, GRID, device=x.device)
    if edges.numel() == 0:
        return x
    taps = 4 if luma else 2
    size = edge_size[..., edges]  # (N, 1, H, E)
    is_edge = (edges % ctu == 0) | (edges % size.clamp(min=GRID) == 0)
    p = [x[..., edges - 1 - i] for i in range(taps)]
    q = [x[..., edges + i] for i in range(taps)]
    new_p, new_q = _luma(p, q, beta, tc) if luma else _chroma(p, q, tc)
    delta = torch.zeros_like(x)
    for i, (before, after) in enumerate(zip(p, new_p)):
        delta = delta.index_add(-1, edges - 1 - i, torch.where(is_edge, after - before, 0.0))
    for i, (before, after) in enumerate(zip(q, new_q)):
        delta = delta.index_add(-1, edges + i, torch.where(is_edge, after - before, 0.0))
    return x + delta


def deblock(x: Tensor, edge_size: Tensor, ctu: int, beta: Tensor, tc: Tensor, luma: bool) -> Tensor:
    """Deblock a plane group ``(N, P, H, W)`` (module doc).

    Args:
        edge_size: ``(N, 1, H, W)`` the transform block size at each sample.
        ctu: the coding-tree block size in this plane's samples (always an edge).
        beta, tc: ``(N,)`` thresholds of each image (:mod:`sandwich.codecs.hevc_proxy.tables`).
        luma: the luma filters, else the chroma filter.
    """
    beta, tc = (v.view(-1, 1, 1, 1).to(x.dtype) for v in (beta, tc))
    x = _vertical_edges(x, edge_size, ctu, beta, tc, luma)
    return _vertical_edges(x.transpose(-1, -2), edge_size.transpose(-1, -2), ctu, beta, tc, luma).transpose(-1, -2)
