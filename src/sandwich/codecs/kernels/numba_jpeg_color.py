"""Fused CPU kernels (numba) of the JPEG proxy's colour stages, before and after the block codec.

:func:`to_planes` and :func:`to_rgb` compute what :func:`sandwich.codecs.jpeg_proxy.proxy.jpeg_proxy` does
around the ``transform_quantize`` op with about fifteen whole-tensor torch passes each way (the torch
composition stays the reference, and runs on other devices and under ``torch.compile``):

* :func:`to_planes` - ``(N, 3, H, W)`` RGB -> the centred planes the block codec takes: samples rounded
  half up and clipped to [0, 255], replicate-padded to whole MCUs, JFIF YCbCr in libjpeg's fixed point
  and rounding, for 4:2:0 the chroma 2x2 means with libjpeg's alternating bias, minus 128;
* :func:`to_rgb` - the block codec's reconstructions -> ``(N, 3, H, W)`` RGB: + 128, rounded and
  clipped, cropped, for 4:2:0 libjpeg's "fancy" triangle up-sampling (rounded), YCbCr -> RGB, rounded
  and clipped.

Each is one pass over the image forward and one backward (an autograd function with the same
straight-through rules as the torch composition: floors pass the gradient, clips block it outside
their range). Forward values equal the torch composition's: the colour conversion into YCbCr is exact
in float32 (integer samples times multiples of 2**-16), and so are the resampling filters; only the
conversion back to RGB rounds, in another order than torch's matrix product, so a sample whose value
falls within float rounding of a rounding threshold may come out one level apart.

One work item per image (:func:`~sandwich.codecs.kernels.numba_runtime.run_items`).
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

from sandwich.codecs.color import CHROMA_OFFSET, ENCODER_ROUNDING, RGB_TO_YCBCR, YCBCR_TO_RGB
from sandwich.codecs.kernels.numba_runtime import JIT, run_items
from sandwich.codecs.quantize import CLIP_MARGIN

_SAMPLE_HI = 255.0 + CLIP_MARGIN  # as round_samples clips: floor(clamp(v, 0, 255.999)) lies in 0..255


def _constants(dtype: np.dtype) -> np.ndarray:
    """Scalars in ``dtype`` (numba would compute float32 math in float64 if given Python floats):
    ``[1/2, clip high, 1/4, 128, Y offset, chroma offset, 1/2 + 128, 0, 3/4]``."""
    return np.array([0.5, _SAMPLE_HI, 0.25, 128.0, ENCODER_ROUNDING[0], 128.0 + ENCODER_ROUNDING[1], 128.5, 0.0, 0.75], dtype=dtype)


def _to_rgb_bias(dtype: torch.dtype) -> np.ndarray:
    """The constant term of YCbCr -> RGB per output channel, ``-(M @ [0, 128, 128])``, computed in
    ``dtype`` as :func:`~sandwich.codecs.color.ycbcr_to_rgb` computes it."""
    return (-(YCBCR_TO_RGB.to(dtype) @ CHROMA_OFFSET.to(dtype))).numpy()


@njit(**JIT)
def _clip_floor(v, consts):  # pragma: no cover - compiled
    """``floor(clamp(v, 0, 255.999))``."""
    return np.floor(min(max(v, consts[7]), consts[1]))


@njit(**JIT)
def _inside(v, consts):  # pragma: no cover - compiled
    """1 where ``0 < v < 255.999`` (where the clip passes the gradient), else 0."""
    return consts[7] < v < consts[1]


@njit(**JIT)
def _planes_forward(first, last, x, m, consts, sub420, luma, chroma):  # pragma: no cover - compiled
    """Images ``first .. last - 1``: ``x (N,3,H,W)`` -> ``luma (N,1,Hp,Wp)``, ``chroma (N,2,Hc,Wc)`` centred.

    ``m`` is the 3x3 RGB -> YCbCr matrix; ``Hp, Wp`` are whole MCUs; ``Hc, Wc`` = ``Hp/2, Wp/2`` for 4:2:0.
    """
    _, _, h, w = x.shape
    hp, wp = luma.shape[2], luma.shape[3]
    half, quarter, centre, y_off, c_off = consts[0], consts[2], consts[3], consts[4], consts[5]
    rgb = np.empty((3, wp), x.dtype)
    ycc = np.empty((3, wp), x.dtype)
    for i in range(first, last):
        for y in range(hp):
            sy = min(y, h - 1)
            for c in range(3):
                src, dst = x[i, c, sy], rgb[c]
                for p in range(w):
                    dst[p] = _clip_floor(src[p] + half, consts)
                for p in range(w, wp):
                    dst[p] = dst[w - 1]
            for c in range(3):
                off = y_off if c == 0 else c_off
                m0, m1, m2, dst = m[c, 0], m[c, 1], m[c, 2], ycc[c]
                for p in range(wp):
                    dst[p] = np.floor(m0 * rgb[0, p] + m1 * rgb[1, p] + m2 * rgb[2, p] + off)
            out = luma[i, 0, y]
            for p in range(wp):
                out[p] = ycc[0, p] - centre
            if not sub420:
                for c in range(2):
                    out, src = chroma[i, c, y], ycc[c + 1]
                    for p in range(wp):
                        out[p] = src[p] - centre
                continue
            for c in range(2):  # 4:2:0: even rows keep their pair sums, odd rows finish the 2x2 mean
                out, src = chroma[i, c, y // 2], ycc[c + 1]
                if y % 2 == 0:
                    for q in range(wp // 2):
                        out[q] = src[2 * q] + src[2 * q + 1]
                else:
                    for q in range(wp // 2):
                        bias = quarter if q % 2 == 0 else half
                        out[q] = np.floor((out[q] + src[2 * q] + src[2 * q + 1]) * quarter + bias) - centre


@njit(**JIT)
def _planes_backward(first, last, g_luma, g_chroma, x, m, consts, sub420, grad_x):  # pragma: no cover - compiled
    """Images ``first .. last - 1``: the adjoint of :func:`_planes_forward`, into ``grad_x (N,3,H,W)``.

    Padded rows and columns fold onto the last real one; the input clip passes the gradient where
    ``0 < x + 1/2 < 255.999``.
    """
    _, _, h, w = x.shape
    hp, wp = g_luma.shape[2], g_luma.shape[3]
    half, quarter, zero = consts[0], consts[2], consts[7]
    g_c = np.empty((2, wp), x.dtype)  # the chroma gradient at full resolution
    row = np.empty(wp, x.dtype)
    for i in range(first, last):
        for y in range(hp):
            gy = g_luma[i, 0, y]
            for c in range(2):
                if sub420:
                    src, dst = g_chroma[i, c, y // 2], g_c[c]
                    for q in range(wp // 2):
                        dst[2 * q] = dst[2 * q + 1] = src[q] * quarter
                else:
                    g_c[c] = g_chroma[i, c, y]
            sy = min(y, h - 1)
            for c in range(3):
                m0, m1, m2 = m[0, c], m[1, c], m[2, c]
                for p in range(wp):
                    row[p] = m0 * gy[p] + m1 * g_c[0, p] + m2 * g_c[1, p]
                extra = zero
                for p in range(w, wp):
                    extra += row[p]
                row[w - 1] += extra
                src, out = x[i, c, sy], grad_x[i, c, sy]
                if y < h:
                    for p in range(w):
                        out[p] = row[p] if _inside(src[p] + half, consts) else zero
                else:  # rows past the image fold onto the last one
                    for p in range(w):
                        out[p] += row[p] if _inside(src[p] + half, consts) else zero


@njit(**JIT)
def _triangle_row(src, other, vert, out, quarter):  # pragma: no cover - compiled
    """One row of libjpeg's fancy up-sampling: vertically ``src + (other - src)/4`` (``other``: the nearer
    neighbour row) into ``vert`` (scratch of ``len(src)``), then each sample split in two horizontally the
    same way (the edge sample repeated); ``out`` has ``2 len(src)`` samples or one fewer (an odd width
    crops the last)."""
    ws = src.shape[0]
    for q in range(ws):
        vert[q] = src[q] + quarter * (other[q] - src[q])
    for q in range(ws):
        mid = vert[q]
        out[2 * q] = mid + quarter * (vert[max(q - 1, 0)] - mid)
        if 2 * q + 1 < out.shape[0]:
            out[2 * q + 1] = mid + quarter * (vert[min(q + 1, ws - 1)] - mid)


@njit(**JIT)
def _rgb_forward(first, last, l_rec, c_rec, m, bias, consts, sub420, rgb, mask):  # pragma: no cover - compiled
    """Images ``first .. last - 1``: reconstructions -> ``rgb (N,3,H,W)`` and ``mask (N,3,H,W)`` (uint8, 1 where
    the final clip passes the gradient).

    ``l_rec (N,1,Hp,Wp)`` and ``c_rec (N,2,Hc,Wc)`` are centred at 0; ``m`` the YCbCr -> RGB matrix, ``bias``
    its constant term :func:`_to_rgb_bias`.
    """
    _, _, h, w = rgb.shape
    half, quarter, up = consts[0], consts[2], consts[6]
    hs, ws = (h + 1) // 2, (w + 1) // 2
    small = np.empty((2, hs, ws), rgb.dtype)
    cc = np.empty((2, w), rgb.dtype)
    vert = np.empty(ws, rgb.dtype)
    lum = np.empty(w, rgb.dtype)
    for i in range(first, last):
        if sub420:
            for c in range(2):
                for r in range(hs):
                    for q in range(ws):
                        small[c, r, q] = _clip_floor(c_rec[i, c, r, q] + up, consts)
        for y in range(h):
            if sub420:
                r = y // 2
                other = max(r - 1, 0) if y % 2 == 0 else min(r + 1, hs - 1)
                for c in range(2):
                    _triangle_row(small[c, r], small[c, other], vert, cc[c], quarter)
                    for p in range(w):
                        cc[c, p] = np.floor(cc[c, p] + half)
            else:
                for c in range(2):
                    for p in range(w):
                        cc[c, p] = _clip_floor(c_rec[i, c, y, p] + up, consts)
            src = l_rec[i, 0, y]
            for p in range(w):
                lum[p] = _clip_floor(src[p] + up, consts)
            for c in range(3):
                m1, m2, b, out, flags = m[c, 1], m[c, 2], bias[c], rgb[i, c, y], mask[i, c, y]
                for p in range(w):
                    v = (b + (m1 * cc[0, p] + m2 * cc[1, p])) + lum[p] + half
                    flags[p] = _inside(v, consts)
                    out[p] = _clip_floor(v, consts)


@njit(**JIT)
def _rgb_backward(first, last, g_rgb, mask, l_rec, c_rec, m, consts, sub420, g_luma, g_chroma):  # pragma: no cover - compiled
    """Images ``first .. last - 1``: the adjoint of :func:`_rgb_forward`, into ``g_luma (N,1,Hp,Wp)`` and
    ``g_chroma (N,2,Hc,Wc)`` (zero where the crop dropped samples)."""
    _, _, h, w = g_rgb.shape
    quarter, up, zero, three_quarters = consts[2], consts[6], consts[7], consts[8]
    hs, ws = (h + 1) // 2, (w + 1) // 2
    g = np.empty((3, w), g_rgb.dtype)
    cols = np.empty((2, h, ws) if sub420 else (2, 1, 1), g_rgb.dtype)  # 4:2:0: the horizontal adjoint of the up-sampling
    for i in range(first, last):
        # Zero what the loop below does not write: the luma (and 4:4:4 chroma) samples the crop dropped;
        # all of the 4:2:0 chroma, which the up-sampling's adjoint accumulates into.
        g_luma[i, :, h:] = zero
        g_luma[i, :, :h, w:] = zero
        if sub420:
            g_chroma[i] = zero
        else:
            g_chroma[i, :, h:] = zero
            g_chroma[i, :, :h, w:] = zero
        for y in range(h):
            for c in range(3):
                src, flags, dst = g_rgb[i, c, y], mask[i, c, y], g[c]
                for p in range(w):
                    dst[p] = src[p] if flags[p] else zero
            l_src, l_out = l_rec[i, 0, y], g_luma[i, 0, y]
            for p in range(w):
                total = g[0, p] + g[1, p] + g[2, p]
                l_out[p] = total if _inside(l_src[p] + up, consts) else zero
            for c in range(2):
                m0, m1, m2 = m[0, c + 1], m[1, c + 1], m[2, c + 1]
                if sub420:
                    out = cols[c, y]
                    for q in range(ws):
                        out[q] = zero
                    for p in range(w):
                        gc = m0 * g[0, p] + m1 * g[1, p] + m2 * g[2, p]
                        q = p // 2
                        near = max(q - 1, 0) if p % 2 == 0 else min(q + 1, ws - 1)
                        out[q] += gc * three_quarters
                        out[near] += gc * quarter
                else:
                    src, out = c_rec[i, c, y], g_chroma[i, c, y]
                    for p in range(w):
                        gc = m0 * g[0, p] + m1 * g[1, p] + m2 * g[2, p]
                        out[p] = gc if _inside(src[p] + up, consts) else zero
        if sub420:  # the vertical adjoint, then the chroma clip
            for c in range(2):
                for y in range(h):
                    r = y // 2
                    near = max(r - 1, 0) if y % 2 == 0 else min(r + 1, hs - 1)
                    src, out, other = cols[c, y], g_chroma[i, c, r], g_chroma[i, c, near]
                    for q in range(ws):
                        out[q] += src[q] * three_quarters
                        other[q] += src[q] * quarter
                for r in range(hs):
                    src, out = c_rec[i, c, r], g_chroma[i, c, r]
                    for q in range(ws):
                        if not _inside(src[q] + up, consts):
                            out[q] = zero


def _dtype(t: Tensor) -> np.dtype:
    return t.detach().numpy().dtype


class _ToPlanes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, sub420: bool) -> tuple[Tensor, Tensor]:  # noqa: D102
        x = x.detach().contiguous()
        n, _, h, w = x.shape
        mcu = 16 if sub420 else 8
        hp, wp = -(-h // mcu) * mcu, -(-w // mcu) * mcu
        luma = x.new_empty((n, 1, hp, wp))
        chroma = x.new_empty((n, 2, hp // 2, wp // 2) if sub420 else (n, 2, hp, wp))
        dtype = _dtype(x)
        m = RGB_TO_YCBCR.numpy().astype(dtype)
        run_items(_planes_forward, n, x.numpy(), m, _constants(dtype), sub420, luma.numpy(), chroma.numpy())
        ctx.save_for_backward(x)
        ctx.sub420 = sub420
        return luma, chroma

    @staticmethod
    def backward(ctx, g_luma: Tensor, g_chroma: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        (x,) = ctx.saved_tensors
        grad_x = torch.empty_like(x)
        dtype = _dtype(x)
        m = RGB_TO_YCBCR.numpy().astype(dtype)
        run_items(
            _planes_backward, x.shape[0], g_luma.contiguous().numpy(), g_chroma.contiguous().numpy(), x.numpy(), m, _constants(dtype),
            ctx.sub420, grad_x.numpy(),
        )  # fmt: skip
        return grad_x, None


class _ToRgb(torch.autograd.Function):
    @staticmethod
    def forward(ctx, l_rec: Tensor, c_rec: Tensor, height: int, width: int, sub420: bool) -> Tensor:  # noqa: D102
        l_rec, c_rec = l_rec.detach().contiguous(), c_rec.detach().contiguous()
        n = l_rec.shape[0]
        rgb = l_rec.new_empty((n, 3, height, width))
        mask = torch.empty((n, 3, height, width), dtype=torch.uint8)
        dtype = _dtype(l_rec)
        m = YCBCR_TO_RGB.numpy().astype(dtype)
        run_items(
            _rgb_forward, n, l_rec.numpy(), c_rec.numpy(), m, _to_rgb_bias(l_rec.dtype), _constants(dtype), sub420,
            rgb.numpy(), mask.numpy(),
        )  # fmt: skip
        ctx.save_for_backward(mask, l_rec, c_rec)
        ctx.sub420 = sub420
        return rgb

    @staticmethod
    def backward(ctx, g_rgb: Tensor) -> tuple[Tensor, Tensor, None, None, None]:  # noqa: D102
        mask, l_rec, c_rec = ctx.saved_tensors
        g_luma, g_chroma = torch.empty_like(l_rec), torch.empty_like(c_rec)
        dtype = _dtype(l_rec)
        m = YCBCR_TO_RGB.numpy().astype(dtype)
        run_items(
            _rgb_backward, l_rec.shape[0], g_rgb.contiguous().numpy(), mask.numpy(), l_rec.numpy(), c_rec.numpy(), m,
            _constants(dtype), ctx.sub420, g_luma.numpy(), g_chroma.numpy(),
        )  # fmt: skip
        return g_luma, g_chroma, None, None, None


def to_planes(x: Tensor, subsampling: str) -> tuple[Tensor, Tensor]:
    """``(N, 3, H, W)`` RGB on the 0..255 scale (CPU, float32/64) -> the centred planes the block codec takes.

    Returns luma ``(N, 1, Hp, Wp)`` and chroma ``(N, 2, Hp/2, Wp/2)`` (4:2:0) or ``(N, 2, Hp, Wp)`` (4:4:4),
    integer-valued in [-128, 127]; ``Hp, Wp``: ``H, W`` padded to whole MCUs (16 for 4:2:0, else 8).
    """
    return _ToPlanes.apply(x, subsampling == "420")


def to_rgb(luma: Tensor, chroma: Tensor, height: int, width: int, subsampling: str) -> Tensor:
    """The block codec's reconstructions of :func:`to_planes`' planes -> ``(N, 3, height, width)`` RGB,
    integer-valued in [0, 255]."""
    return _ToRgb.apply(luma, chroma, height, width, subsampling == "420")
