"""A differentiable JPEG proxy that follows libjpeg-turbo's forward pass.

Forward, for an image of integer-valued samples in [0, 255] (what the real encoder is given):

1. round the input (straight-through) and clip to [0, 255];
2. pad to whole MCUs by repeating the last row and column (16 for 4:2:0, else 8), as libjpeg does;
3. RGB -> JFIF YCbCr in libjpeg's 16-bit fixed point, rounded as libjpeg rounds;
4. 4:2:0: chroma 2x2 box mean, rounded with libjpeg's alternating bias (``h2v2_downsample``);
5. per plane: orthonormal 8x8 DCT of (sample - 128), quantise with the plane's step table (round half
   away from zero, as libjpeg), dequantise, inverse DCT, + 128, round, clip to [0, 255];
6. 4:2:0: chroma "fancy" triangle up-sampling (libjpeg's decoder default), rounded;
7. YCbCr -> RGB, rounded and clipped; crop to the input size.

Every rounding is straight-through (or additive noise for the coefficients, ``quantizer="noise"``), so
the backward pass is that of the float pipeline: smooth, with exact gradients for the steps.

What remains different from libjpeg is its fixed-point arithmetic (ISLOW DCT, 16-bit colour tables)
and tie-breaking in a few roundings; ``sandwich bench proxy`` measures the gap (PSNR vs libjpeg's decode).

Steps 1-4 and 6-7 run as torch compositions (the reference), or, for colour images on CPU in eager
mode when the block codec's kernels are ``auto`` or ``numba``, as two fused numba kernels
(:mod:`sandwich.codecs.kernels.numba_jpeg_color`), each one pass forward and one backward.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sandwich.codecs.blockcodec import CodedPlanes, transform_quantize
from sandwich.codecs.color import ENCODER_ROUNDING, rgb_to_ycbcr, ycbcr_to_rgb
from sandwich.codecs.jpeg_tables import ijg_tables
from sandwich.codecs.jpeg_proxy.rate import LinearJpegRate
from sandwich.codecs.kernels import ops
from sandwich.codecs.quantize import param_from_step, round_samples, step_from_param
from sandwich.codecs.real.jpeg import SUBSAMPLINGS
from sandwich.codecs.real.levels import REFERENCE_LUMA_STEP, level_of_steps
from sandwich.codecs.resample import box_down2, triangle_up2
from sandwich.errors import InputError
from sandwich.sample_format import peak

_YCC_ROUNDING = torch.tensor(ENCODER_ROUNDING)


@dataclass
class ProxyOutput:
    """Result of a proxy codec.

    Attributes:
        recon: ``(N, C, H, W)`` decoded image, integer-valued in [0, 255] in the forward pass.
        planes: the coded plane groups: luma (``(N, 1, ...)``), then chroma (``(N, 2, ...)``) if any.
        centred: per group, the integer-valued padded sample planes the block codec took, minus 128
            (-128..127), shaped like the group.
    """

    recon: Tensor
    planes: list[CodedPlanes]
    centred: list[Tensor]

    @property
    def samples(self) -> list[Tensor]:
        """Per group, the padded sample planes (0..255) the real encoder's DCT would see; used to
        calibrate rate models against libjpeg."""
        return [c + 128.0 for c in self.centred]


def _crop(x: Tensor, h: int, w: int) -> Tensor:
    """The top-left ``h x w`` of ``x`` (``x`` itself when it already has that size: no backward copy)."""
    return x if x.shape[-2:] == (h, w) else x[..., :h, :w]


def jpeg_proxy(
    x: Tensor, luma_step: Tensor, chroma_step: Tensor, subsampling: str = "420", quantizer: str = "ste", impl: str | None = None
) -> ProxyOutput:
    """Functional JPEG proxy (see module docstring).

    Args:
        x: ``(N, 3, H, W)`` RGB (4:4:4 or 4:2:0) or ``(N, 1, H, W)`` gray (4:0:0), on the 0..255 scale.
        luma_step, chroma_step: steps for Y and for Cb/Cr; any shape
            :func:`~sandwich.codecs.blockcodec.tile_step` accepts (flat, an 8x8 table, per image); > 0.
        subsampling: ``"444"``, ``"420"`` or ``"400"``.
        quantizer: ``"ste"`` or ``"noise"``.
        impl: block-codec kernels (see :func:`~sandwich.codecs.blockcodec.transform_quantize`); None:
            ``$SANDWICH_KERNELS``, else ``"auto"``.
    """
    if subsampling not in SUBSAMPLINGS:
        raise InputError(f"jpeg proxy: subsampling {subsampling!r} not one of {', '.join(SUBSAMPLINGS)}")
    want = 1 if subsampling == "400" else 3
    if x.dim() != 4 or x.shape[1] != want:
        raise InputError(f"jpeg proxy ({subsampling}): expected (N, {want}, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    fused = subsampling != "400" and _fused_colour(x, impl)
    if fused:
        from sandwich.codecs.kernels import numba_jpeg_color  # imports numba: only when used

        centred = list(numba_jpeg_color.to_planes(x, subsampling))
    else:
        centred = [g - 128.0 for g in _sample_planes(x, subsampling)]
    coded = [
        transform_quantize(g, luma_step if i == 0 else chroma_step, 8, quantizer, "luma" if i == 0 else "chroma", impl=impl)
        for i, g in enumerate(centred)
    ]
    if fused:
        rgb = numba_jpeg_color.to_rgb(coded[0].recon, coded[1].recon, h, w, subsampling)
    else:
        rgb = _decoded_image(coded, h, w, subsampling)
    return ProxyOutput(recon=rgb, planes=coded, centred=centred)


def _fused_colour(x: Tensor, impl: str | None) -> bool:
    """Whether the colour stages run as fused numba kernels: CPU, float32/64, kernels ``auto`` or
    ``numba``, and not under ``torch.compile`` (which fuses the torch composition itself)."""
    impl = ops.default_impl() if impl is None else impl
    return (
        impl in ("auto", "numba")
        and x.device.type == "cpu"
        and x.dtype in ops.FUSED_DTYPES
        and not torch.compiler.is_compiling()
    )


def _sample_planes(x: Tensor, subsampling: str) -> list[Tensor]:
    """Steps 1-4 in torch: ``(N, C, H, W)`` -> the padded integer sample planes, luma then chroma if any."""
    h, w = x.shape[-2:]
    mcu = 16 if subsampling == "420" else 8
    x = round_samples(x)
    if h % mcu or w % mcu:
        x = F.pad(x, (0, -w % mcu, 0, -h % mcu), mode="replicate")
    if subsampling == "400":
        return [x]
    luma, chroma = (round_samples(p, offset=0.0, peak=None) for p in rgb_to_ycbcr(x, _YCC_ROUNDING))
    if subsampling == "420":
        chroma = round_samples(box_down2(chroma), offset=0.0, peak=None)
    return [luma, chroma]


def _decoded_image(coded: list[CodedPlanes], h: int, w: int, subsampling: str) -> Tensor:
    """Steps 6-7 in torch: the coded planes' reconstructions -> the ``(N, C, h, w)`` decoded image."""
    luma = _crop(round_samples(coded[0].recon, offset=128.5), h, w)
    if subsampling == "400":
        return luma
    chroma = round_samples(coded[1].recon, offset=128.5)
    if subsampling == "420":
        chroma = round_samples(triangle_up2(_crop(chroma, (h + 1) // 2, (w + 1) // 2), h, w), peak=None)
    else:
        chroma = _crop(chroma, h, w)
    return round_samples(ycbcr_to_rgb(luma, chroma))


class JpegProxy(nn.Module):
    """JPEG proxy with its step tables as (optionally trainable) parameters.

    Exactly one of ``quality`` (IJG tables scaled as libjpeg's ``jpeg_set_quality``) and ``flat_step``
    (one step Δ for every frequency) sets the initial steps. Steps are parameterised as
    ``Δ = ELU(p, 0.01) + 1`` (:func:`~sandwich.codecs.quantize.step_from_param`); flat steps train as
    one scalar per table, IJG tables as 8x8 per table.

    Args:
        subsampling: ``"444"``, ``"420"`` or ``"400"``.
        quality: libjpeg quality 1..100.
        flat_step: a flat step >= 1 (on the orthonormal-DCT scale, same as a JPEG table entry).
        trainable: whether the steps are ``nn.Parameter`` s.
        quantizer: ``"ste"`` or ``"noise"`` for the coefficients.

    Example:
        >>> proxy = JpegProxy("420", quality=75)
        >>> out = proxy(torch.rand(1, 3, 32, 40) * 255)
        >>> out.recon.shape
        torch.Size([1, 3, 32, 40])
    """

    def __init__(
        self,
        subsampling: str = "420",
        quality: int | None = None,
        flat_step: float | None = None,
        trainable: bool = False,
        quantizer: str = "ste",
    ) -> None:
        super().__init__()
        if (quality is None) == (flat_step is None):
            raise InputError("jpeg proxy: give exactly one of quality and flat_step")
        if quality is not None:
            luma, chroma = (torch.tensor(t, dtype=torch.float32) for t in ijg_tables(quality))
        else:
            luma = chroma = torch.tensor(float(flat_step))
        self.subsampling, self.quantizer = subsampling, quantizer
        for name, step in (("luma_param", luma), ("chroma_param", chroma)):
            param = param_from_step(step.clone())
            if trainable:
                self.register_parameter(name, nn.Parameter(param))
            else:
                self.register_buffer(name, param)

    def steps(self) -> tuple[Tensor, Tensor]:
        """The current (luma, chroma) steps, each ``()`` or ``(8, 8)``."""
        return step_from_param(self.luma_param), step_from_param(self.chroma_param)

    def forward(self, x: Tensor) -> ProxyOutput:  # noqa: D102
        luma, chroma = self.steps()
        return jpeg_proxy(x, luma, chroma, self.subsampling, self.quantizer)


class JpegProxyCodec(nn.Module):
    """The JPEG proxy (:class:`JpegProxy`) with the calibration-free rate model.

    Args:
        subsampling: ``"444"``, ``"420"`` (3 channels) or ``"400"`` (1 channel).
        quality: the IJG quality whose tables initialise the steps (trained as 8x8 tables), or
        flat_step: a flat initial step (trained as one scalar per table); exactly one of the two.
        trainable: learn the steps with the networks.
        quantizer: ``"ste"`` or ``"noise"`` for the coefficients.
        kernels: block-codec kernels (:mod:`sandwich.codecs.kernels.ops`); None: ``$SANDWICH_KERNELS``
            or ``"auto"`` (Triton on CUDA, numba on CPU).

    Example:
        >>> proxy = JpegProxyCodec("400", quality=50)
        >>> decoded, bits = proxy(torch.rand(2, 1, 32, 32), torch.tensor([0.0, 1.0]))
        >>> decoded.shape, bits.shape
        (torch.Size([2, 1, 32, 32]), torch.Size([2]))
    """

    def __init__(
        self,
        subsampling: str = "420",
        quality: int | None = 50,
        flat_step: float | None = None,
        trainable: bool = False,
        quantizer: str = "ste",
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        ops.check_kernels(kernels, "jpeg proxy")
        self.proxy = JpegProxy(subsampling, quality=quality, flat_step=flat_step, trainable=trainable, quantizer=quantizer)
        self.rate = LinearJpegRate()
        self.kernels = kernels
        self.channels = 1 if subsampling == "400" else 3
        self.alignment = 16 if subsampling == "420" else 8

    def base_level(self) -> float:
        """The level of the (learned) steps as they are."""
        return level_of_steps(self.proxy.steps()[0].detach().cpu().numpy())

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the base steps) -> (decoded on [0, 1], bits ``(N,)``).

        At level ``ℓ`` every step is the base step times ``2**(ℓ - base level)``.
        """
        luma, chroma = self.proxy.steps()
        if level is not None:
            # In torch, on the steps' device: a training step needs no host round trip for the base level.
            base = torch.log2(luma.detach().mean() / REFERENCE_LUMA_STEP)
            scale = torch.exp2(level.to(luma) - base)  # (N,): flat steps become (N,), tables (N, 8, 8)
            luma, chroma = (s * scale if s.dim() == 0 else s * scale[:, None, None] for s in (luma, chroma))
        top = peak(8)
        out = jpeg_proxy(bottleneck * top, luma, chroma, self.proxy.subsampling, self.proxy.quantizer, self.kernels)
        return out.recon / top, self.rate(out.planes)

    def learned_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """The current (luma, chroma) steps as ``(8, 8)`` integer JPEG tables (1..255)."""
        luma, chroma = (torch.broadcast_to(s.detach().cpu(), (8, 8)).round().clamp(1, 255).to(torch.int64).numpy() for s in self.proxy.steps())
        return luma, chroma

    def summary(self) -> dict[str, Tensor]:
        """Scalars worth logging in training: the mean luma and chroma steps."""
        luma, chroma = self.proxy.steps()
        return {"luma_step_mean": luma.mean(), "chroma_step_mean": chroma.mean()}
