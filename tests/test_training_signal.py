"""The training signal with the real codec in the loop (``codec.signal``): straight-through decode,
calibrated rate, threaded coding, knob-snapped levels; and checkpoints from before the knob rename."""

from __future__ import annotations

import pytest
import torch

from sandwich.codecs.real.av1 import Av1Codec
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.levels import KnobLevels
from sandwich.codecs.stage import CodecStage, code_images
from sandwich.config import compose, upgrade
from sandwich.scenarios.registry import create_module
from sandwich.data.samples import load_photo
from sandwich.errors import InputError
from sandwich.sample_format import to_array, to_tensor

QPS = (27, 38, 45)


def hevc_stage(rate: str, decode: str) -> CodecStage:
    return CodecStage({"name": "jpeg", "subsampling": "420"}, {"name": "hevc", "subsampling": "420"}, [20, 30, 40, 50], signal={"rate": rate, "decode": decode}).train()


def photo_batch() -> torch.Tensor:
    """Three ``(3, 48, 64)`` crops of held-out photos on [0, 1], with a gradient."""
    crops = [load_photo(name)[200:248, 300:364] for name in ("sporco/kodim23", "sporco/monarch", "sporco/sail")]
    return torch.stack([to_tensor(c) for c in crops]).requires_grad_(True)


def x265_by_hand(x: torch.Tensor, qps: tuple[int, ...]) -> tuple[torch.Tensor, list[int]]:
    """Each image coded and decoded by a fresh x265 codec, one after another: the independent reference."""
    codec = HevcCodec("420")
    encoded = [codec.encode(to_array(image), qp) for image, qp in zip(x, qps)]
    return torch.stack([to_tensor(codec.decode(e.data)) for e in encoded]), [e.payload_bits for e in encoded]


def test_straight_through_decode_is_x265s_forward_and_the_proxys_gradient() -> None:
    """decode=real: the forward value is x265's decode of each image at its QP; the gradient w.r.t. the
    bottleneck is exactly the proxy's (the same weighted sum backpropagated through the proxy alone)."""
    stage = hevc_stage("proxy", "real")
    x = photo_batch()
    level = torch.tensor([stage.level_of(qp) for qp in QPS])
    decoded, bits = stage(x, level)
    reference, _ = x265_by_hand(x.detach(), QPS)
    torch.testing.assert_close(decoded.detach(), reference, atol=1e-6, rtol=0)
    proxy_decoded, proxy_bits = stage.proxy(x, level)
    assert float((proxy_decoded.detach() - reference).abs().max()) > 0.05  # the proxy alone is far from x265 here
    weights = torch.randn_like(decoded)
    (through_signal,) = torch.autograd.grad((decoded * weights).sum() + bits.sum(), x)
    (through_proxy,) = torch.autograd.grad((proxy_decoded * weights).sum() + proxy_bits.sum(), x)
    torch.testing.assert_close(through_signal, through_proxy, atol=0, rtol=0)


def test_calibrated_bits_are_x265s_payload_bits_with_the_proxys_gradient_scaled() -> None:
    """rate=calibrated: each image's bits equal x265's payload bits for that bottleneck at that QP; the
    gradient is the proxy's scaled by the same image's ratio real / proxy."""
    stage = hevc_stage("calibrated", "proxy")
    x = photo_batch()
    level = torch.tensor([stage.level_of(qp) for qp in QPS])
    decoded, bits = stage(x, level)
    _, real_bits = x265_by_hand(x.detach(), QPS)
    torch.testing.assert_close(bits.detach(), torch.tensor(real_bits, dtype=bits.dtype), rtol=1e-6, atol=0)
    proxy_decoded, proxy_bits = stage.proxy(x, level)
    torch.testing.assert_close(decoded, proxy_decoded, atol=0, rtol=0)  # decode=proxy: the proxy's decode
    ratio = torch.tensor(real_bits, dtype=bits.dtype) / proxy_bits.detach()
    for i in range(len(QPS)):
        (calibrated,) = torch.autograd.grad(bits[i], x, retain_graph=True)
        (proxy,) = torch.autograd.grad(proxy_bits[i], x, retain_graph=True)
        want = proxy * ratio[i]
        torch.testing.assert_close(calibrated, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))  # float32 sums in another order
    assert float(stage.summary()["rate_calibration"]) == pytest.approx(float(ratio.mean()), rel=1e-6)


def test_without_a_real_signal_or_outside_training_the_stage_is_the_proxy() -> None:
    x, level = photo_batch().detach(), torch.tensor([0.0, 1.0, -1.0])
    for stage in (hevc_stage("proxy", "proxy"), hevc_stage("calibrated", "real").eval()):
        for got, want in zip(stage(x, level), stage.proxy(x, level)):
            assert torch.equal(got, want)


def test_without_a_gradient_to_give_both_values_are_x265s_and_the_proxy_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A post-only sandwich (or a frozen pre-processor) gives the stage a bottleneck without a gradient: with
    rate=calibrated and decode=real the result is x265's decode and payload bits, and the proxy, whose
    values both replace, is not run."""
    stage = hevc_stage("calibrated", "real")
    x = photo_batch().detach()
    level = torch.tensor([stage.level_of(qp) for qp in QPS])

    def refuse(*args: object) -> None:
        raise AssertionError("the proxy ran")

    monkeypatch.setattr(stage.proxy, "forward", refuse)
    decoded, bits = stage(x, level)
    reference, real_bits = x265_by_hand(x, QPS)
    torch.testing.assert_close(decoded, reference, atol=1e-6, rtol=0)
    assert bits.tolist() == [float(b) for b in real_bits]
    with pytest.raises(AssertionError, match="the proxy ran"):
        stage(x.requires_grad_(True), level)


def test_threads_code_what_one_image_after_another_codes() -> None:
    """The thread pool changes nothing in the streams: decodes and bits equal serial coding's, for x265 and SVT-AV1."""
    x = photo_batch().detach()
    for codec, knobs in ((HevcCodec("420"), [22, 33, 44]), (Av1Codec(), [20, 35, 50])):
        serial = code_images(x, codec, lambda image, i: codec.encode(image, knobs[i]), workers=1)
        threaded = code_images(x, codec, lambda image, i: codec.encode(image, knobs[i]), workers=2)
        assert torch.equal(serial[0], threaded[0]) and torch.equal(serial[1], threaded[1])


def test_a_real_signal_draws_levels_of_knob_values() -> None:
    """With the codec in the loop every training level is that of a QP (the processors are told what x265 codes at)."""
    stage = hevc_stage("calibrated", "real")
    torch.manual_seed(0)
    levels = stage.sample_levels(200).tolist()
    knob_levels = KnobLevels(stage.real)
    assert all(knob_levels.level(knob_levels.knob(v)) == pytest.approx(v, abs=1e-6) for v in levels)
    assert len(set(levels)) > 10 and min(levels) >= stage.level_range[0] - 0.2 and max(levels) <= stage.level_range[1] + 0.2


@pytest.mark.parametrize(
    ("signal", "match"), [({"rate": "real"}, "codec.signal.rate"), ({"decode": "x265"}, "codec.signal.decode"), ({"gradient": "real"}, "unknown key")]
)
def test_an_unknown_signal_is_refused(signal: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        CodecStage({"name": "jpeg", "subsampling": "420"}, {"name": "hevc", "subsampling": "420"}, [30], signal=signal)


def test_upgrade_renames_the_old_knob_keys_and_the_stage_keeps_the_proxy_signal() -> None:
    """A configuration stored before the rename (codec.levels/val_levels, a baseline codec's levels) and before
    codec.signal/workers reads as today's without those two, and its module trains on the proxy's signal with
    two coding threads, as it was trained."""
    new = compose(["experiment=hdr12_jpeg"])
    old = dict(new)
    codec = {("levels" if k == "knobs" else "val_levels" if k == "val_knobs" else k): v for k, v in new["codec"].items() if k not in ("signal", "workers")}
    baselines = {
        n: None if variants is None else {label: {("levels" if k == "knobs" else k): v for k, v in variant.items()} for label, variant in variants.items()}
        for n, variants in new["scenario"]["baselines"].items()
    }
    assert any("levels" in variant for variants in baselines.values() if variants for variant in variants.values())
    old["codec"], old["scenario"] = codec, new["scenario"] | {"baselines": baselines}
    assert new["codec"]["signal"] == {"rate": "proxy", "decode": "proxy"} and new["codec"]["workers"] == 2
    assert upgrade(old) == new | {"codec": {k: v for k, v in new["codec"].items() if k not in ("signal", "workers")}}
    stage = create_module(upgrade(old)).codec
    assert (stage.signal.rate, stage.signal.decode, stage.workers) == ("proxy", "proxy", 2)
