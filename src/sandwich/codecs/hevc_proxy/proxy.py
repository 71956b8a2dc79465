"""The HEVC-intra proxy's pipeline, and the proxy the codec stage builds by name (``codec.proxy.name: hevc``).

Forward, for an image of integer-valued samples in [0, 255] (what x265 is given, see
:mod:`sandwich.codecs.real.hevc`):

1. round (straight-through), pad by replication to whole 32x32 coding-tree blocks (CTBs);
2. RGB -> full-range BT.601 YCbCr; 4:2:0: chroma 2x2 box means; rounded (as the real codec);
3. for every transform size 4, 8, 16, 32 (chroma: half of luma's in 4:2:0, at least 4), code the planes
   with closed-loop intra prediction (:mod:`.intra`) at ``Δ = 2**((QP - 4) / 6)`` (chroma at 4:2:0's
   chroma QP), QP being the slice QP x265 codes a knob value at (3 below it, :func:`.tables.slice_qp`);
4. per CTB, keep the size of least rate-distortion cost ``SSE + λ(QP) · bits`` (luma and chroma
   together, the rate from :mod:`.rate`): the proxy's transform-size decision;
5. deblock (:mod:`.deblock`), round, crop; 4:2:0: triangle up-sampling (the real decoder's); back to RGB, rounded.

The QP of a level comes from the real codec's own calibration (:class:`~sandwich.codecs.real.levels.KnobLevels`
of x265 at that layout, interpolated between QPs), so the proxy at a knob value's level codes at that QP.

Not modelled: SAO, CU splits below a CTB other than the transform size, 30 of the 35 intra modes,
RDOQ-free x265's psycho-visual decisions. ``sandwich bench proxy --codec hevc`` measures the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sandwich.codecs.color import rgb_to_ycbcr, ycbcr_to_rgb
from sandwich.codecs.hevc_proxy import tables
from sandwich.codecs.hevc_proxy.deblock import deblock
from sandwich.codecs.hevc_proxy.intra import SizeCoding, code_size
from sandwich.codecs.hevc_proxy.rate import HevcRate
from sandwich.codecs.kernels.ops import check_kernels
from sandwich.codecs.quantize import round_samples
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.levels import KnobLevels
from sandwich.codecs.resample import box_down2, triangle_up2
from sandwich.errors import InputError
from sandwich.sample_format import peak

CTB = 32
SIZES = (4, 8, 16, 32)


@dataclass
class HevcOutput:
    """Result of the HEVC proxy.

    Attributes:
        recon: ``(N, C, H, W)`` decoded image, integer-valued in [0, 255] in the forward pass.
        features: ``(N, len(FEATURE_NAMES))`` the rate model's statistics (:mod:`.rate`).
        sizes: ``(N, 1, Hp, Wp)`` the luma transform size chosen at each (padded) sample.
    """

    recon: Tensor
    features: Tensor
    sizes: Tensor


def _planes(x: Tensor, subsampling: str) -> list[Tensor]:
    """Steps 1-2: ``(N, C, H, W)`` -> integer sample planes, luma ``(N, 1, Hp, Wp)`` then chroma if any."""
    h, w = x.shape[-2:]
    x = round_samples(x)
    if h % CTB or w % CTB:
        x = F.pad(x, (0, -w % CTB, 0, -h % CTB), mode="replicate")
    if subsampling == "400":
        return [x]
    luma, chroma = rgb_to_ycbcr(x)
    if subsampling == "420":
        chroma = box_down2(chroma)
    return [round_samples(luma), round_samples(chroma)]


def _per_ctb(values: Tensor, blocks_per_ctb: int) -> Tensor:
    """``(R, C, N, ...)`` per block -> ``(Rc, Cc, N, ...)`` summed per CTB."""
    r, c, *rest = values.shape
    b = blocks_per_ctb
    return values.reshape(r // b, b, c // b, b, *rest).sum(dim=(1, 3))


def _per_sample(choice: Tensor, ctb: int) -> Tensor:
    """``(Rc, Cc, N)`` per-CTB values -> ``(N, 1, Rc·ctb, Cc·ctb)``."""
    return choice.permute(2, 0, 1).repeat_interleave(ctb, dim=1).repeat_interleave(ctb, dim=2).unsqueeze(1)


def _cheapest_sizes(
    codings: list[list[SizeCoding]], kinds: list[tuple[str, int]], sizes: Sequence[int], lam: Tensor, rate: HevcRate
) -> tuple[Tensor, list[list[Tensor]]]:
    """Step 4: each CTB keeps the luma size of least ``SSE + λ · bits`` over its plane groups.

    Args:
        codings: per plane group (``kinds``: its kind and subsampling factor), its coding at each of ``sizes``.
        lam: ``(N,)`` the Lagrangian of each image.

    Returns:
        ``(Rc, Cc, N, S)`` one-hot choice, and per size, per group, ``(Rc, Cc, N, F)`` statistics per CTB.
    """
    costs, ctb_features = [], []
    for i, s in enumerate(sizes):
        cost, features = 0.0, []
        for k, (kind, sub) in enumerate(kinds):
            blocks = CTB // sub // max(s // sub, 4)
            per_ctb = _per_ctb(codings[k][i].features, blocks)
            cost = cost + _per_ctb(codings[k][i].sse, blocks) + lam * (per_ctb.detach() @ rate.per_kind(kind).to(lam.dtype))
            features.append(per_ctb)
        costs.append(cost)
        ctb_features.append(features)
    choice = torch.stack(costs).argmin(dim=0)  # (Rc, Cc, N)
    return F.one_hot(choice, len(sizes)).to(lam.dtype), ctb_features


def hevc_intra_proxy(
    x: Tensor,
    qp: Tensor,
    subsampling: str,
    rate: HevcRate,
    *,
    sizes: Sequence[int] = SIZES,
    intra: bool = True,
    deblocking: bool = True,
    impl: str | None = None,
) -> HevcOutput:
    """Functional HEVC-intra proxy (module doc).

    Args:
        x: ``(N, 3, H, W)`` RGB (4:2:0, 4:4:4) or ``(N, 1, H, W)`` gray (4:0:0) on the 0..255 scale.
        qp: ``(N,)`` slice QP of each image (real-valued, 0..51; x265's knob value minus 3, :func:`.tables.slice_qp`).
        subsampling: ``"420"``, ``"444"`` or ``"400"``.
        rate: the rate model (its weights rank the transform sizes).
        sizes: the luma transform sizes to choose from (e.g. ``(8,)`` for one fixed size).
        intra: intra prediction (else every block is predicted as 128).
        deblocking: the deblocking filter.
        impl: the kernel of the closed-loop decisions (:func:`.intra.decisions`; None: ``SANDWICH_KERNELS``).
    """
    if subsampling not in ("420", "444", "400"):
        raise InputError(f"hevc proxy: subsampling {subsampling!r} not one of 420, 444, 400")
    want = 1 if subsampling == "400" else 3
    if x.dim() != 4 or x.shape[1] != want:
        raise InputError(f"hevc proxy ({subsampling}): expected (N, {want}, H, W), got {tuple(x.shape)}")
    if not sizes or any(s not in SIZES for s in sizes):
        raise InputError(f"hevc proxy: sizes {list(sizes)} must be a non-empty subset of {SIZES}")
    n, _, h, w = x.shape
    qp_np = qp.detach().double().cpu().numpy()
    qps = [qp_np, tables.chroma_qp(qp_np, subsampling)]
    as_tensor = lambda v: torch.as_tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
    planes = _planes(x, subsampling)
    factor = 2 if subsampling == "420" else 1
    kinds = [("luma", planes[0], 1)] + ([("chroma", planes[1], factor)] if len(planes) > 1 else [])
    codings: list[list[SizeCoding]] = []
    for kind, group, sub in kinds:
        step = as_tensor(tables.qstep(qps[len(codings)]))
        cache: dict[int, SizeCoding] = {}
        for s in sizes:
            size = max(s // sub, 4)
            if size not in cache:
                cache[size] = code_size(group, size, step, luma=kind == "luma", intra=intra, impl=impl)
        codings.append([cache[max(s // sub, 4)] for s in sizes])
    onehot, ctb_features = _cheapest_sizes(codings, [(kind, sub) for kind, _, sub in kinds], sizes, as_tensor(tables.mode_lambda(qp_np)), rate)
    recon, per_image = [], []
    for k, (kind, group, sub) in enumerate(kinds):
        ctb = CTB // sub
        masks = [_per_sample(onehot[..., i], ctb) for i in range(len(sizes))]
        plane = sum(m * codings[k][i].recon for i, m in enumerate(masks))
        per_image.append(sum((onehot[..., i, None] * ctb_features[i][k]).sum(dim=(0, 1)) for i in range(len(sizes))))
        if deblocking:
            size_map = sum(m * max(s // sub, 4) for m, s in zip(masks, sizes))
            thresholds = (tables.beta(qps[k]), tables.tc(qps[k]))
            plane = deblock(plane, size_map, ctb, *(as_tensor(v) for v in thresholds), luma=kind == "luma")
        recon.append(round_samples(plane))
    if len(kinds) == 1:
        per_image.append(torch.zeros_like(per_image[0]))
    features = torch.cat([*per_image, x.new_ones(n, 1)], dim=1)
    luma_sizes = sum(_per_sample(onehot[..., i], CTB) * s for i, s in enumerate(sizes))
    if subsampling == "400":
        return HevcOutput(recon=recon[0][..., :h, :w], features=features, sizes=luma_sizes)
    chroma = recon[1]
    if subsampling == "420":
        chroma = triangle_up2(chroma[..., : (h + 1) // 2, : (w + 1) // 2], h, w)
    else:
        chroma = chroma[..., :h, :w]
    rgb = round_samples(ycbcr_to_rgb(recon[0][..., :h, :w], chroma))
    return HevcOutput(recon=rgb, features=features, sizes=luma_sizes)


class HevcIntraProxy(nn.Module):
    """The HEVC-intra proxy as the codec stage uses it (``codec.proxy.name: hevc``).

    Args:
        subsampling: ``"420"``, ``"444"`` (3 channels) or ``"400"`` (1 channel).
        qp: the knob value (x265's ``qp`` option) it codes at without a level (its base level).
        sizes: luma transform sizes to choose from.
        intra: intra prediction; deblocking: the deblocking filter (switches for tests and ablations).
        kernels: the kernel of the closed-loop decisions (:func:`.intra.decisions`; None: ``SANDWICH_KERNELS``),
            the ``codec.proxy.kernels`` key as for the JPEG proxy.

    Example:
        >>> proxy = HevcIntraProxy("420")
        >>> decoded, bits = proxy(torch.rand(2, 3, 32, 32), torch.tensor([0.0, 1.0]))
        >>> decoded.shape, bits.shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2]))
    """

    def __init__(
        self,
        subsampling: str = "420",
        qp: float = 36.0,
        sizes: Sequence[int] = SIZES,
        intra: bool = True,
        deblocking: bool = True,
        kernels: str | None = None,
    ) -> None:
        super().__init__()
        check_kernels(kernels, "hevc proxy")
        self.subsampling, self.qp, self.kernels = subsampling, float(qp), kernels
        self.sizes, self.intra, self.deblocking = tuple(int(s) for s in sizes), bool(intra), bool(deblocking)
        self.channels = 1 if subsampling == "400" else 3
        self.alignment = CTB
        self.rate = HevcRate()
        table = KnobLevels(HevcCodec(subsampling))
        self._knobs, self._levels = table.knobs.astype(np.float64), np.maximum.accumulate(table.levels)

    def qp_of(self, level: np.ndarray) -> np.ndarray:
        """The (real-valued) knob value (x265's ``qp``) of levels ``level``, by x265's measured knob <-> level table."""
        return np.interp(level, self._levels, self._knobs)

    def base_level(self) -> float:
        """The level of its base QP."""
        return float(np.interp(self.qp, self._knobs, self._levels))

    def forward(self, bottleneck: Tensor, level: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(N, C, H, W)`` on [0, 1] at levels ``(N,)`` (None: the base QP) -> (decoded on [0, 1], bits ``(N,)``)."""
        n = bottleneck.shape[0]
        knob = np.full(n, self.qp) if level is None else self.qp_of(level.detach().double().cpu().numpy())
        qp = tables.slice_qp(knob)
        top = peak(8)
        out = hevc_intra_proxy(
            bottleneck * top,
            torch.as_tensor(qp),
            self.subsampling,
            self.rate,
            sizes=self.sizes,
            intra=self.intra,
            deblocking=self.deblocking,
            impl=self.kernels,
        )
        return out.recon / top, self.rate(out.features)

    def learned_tables(self) -> None:
        """It has no step tables to hand a real codec."""
        return None

    def summary(self) -> dict[str, Tensor]:
        """Nothing is learned in it: no scalars to log."""
        return {}
