"""The U-Net over a timm encoder: any size, gradients into the encoder, cached weights only, built by name."""

from __future__ import annotations

import pytest
import safetensors.torch
import timm
import torch
from huggingface_hub import constants as hf_constants
from torch import nn

from sandwich.errors import InputError
from sandwich.nets.processor import Processor
from sandwich.nets.timm_unet import TimmUNet
from sandwich.nets.processor import create_unet


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache: no test may see the user's weights or reach the network, and
    timm's downloaders (which read the cache too, but ask the hub when online) fail the test if called."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))

    def download(*args, **kwargs):
        raise AssertionError(f"timm tried to download {args}")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(timm.models._builder, name, download)
    return tmp_path / "hf" / "hub"


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenetv3_small_100"])
@pytest.mark.parametrize("shape", [(2, 3, 37, 50), (2, 3, 1, 5)])
def test_any_size(encoder, shape):
    net = TimmUNet(encoder, 3, 2)
    assert isinstance(net.head, nn.Conv2d)
    with torch.no_grad():
        assert net(torch.rand(shape)).shape == (shape[0], 2, *shape[2:])


def test_pads_to_the_largest_stride_and_crops():
    """The same as padding by hand (replicate) to a multiple of 32 and cropping: the encoder's feature grids are
    exact halvings, whatever the input size."""
    net = TimmUNet("mobilenetv3_small_100", 3, 3).eval()
    x = torch.rand(1, 3, 37, 50)
    padded = torch.nn.functional.pad(x, (0, 14, 0, 27), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded)[..., :37, :50])


def test_gradient_reaches_the_encoder_stem():
    net = TimmUNet("mobilenetv3_small_100", 3, 3, pretrained=False)
    net(torch.rand(2, 3, 33, 40)).square().mean().backward()
    stem = next(m for m in net.encoder.modules() if isinstance(m, nn.Conv2d))
    assert stem.weight.grad is not None and stem.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("encoder", "message"), [("resnet_nope", r"'resnet_nope'.*timm.list_models"), ("resnet18.nope", "tag")])
def test_unknown_encoder_or_tag(encoder, message):
    with pytest.raises(InputError, match=message):
        TimmUNet(encoder, 3, 3, pretrained=False)


def test_pretrained_required_but_not_cached():
    with pytest.raises(InputError, match="'resnet18'.*not in the Hugging Face cache"):
        TimmUNet("resnet18", 3, 3, pretrained=True)


def test_auto_loads_cached_weights_offline(empty_hf_cache):
    """Weights put in the cache the way huggingface_hub lays them out are loaded, stem adapted to 4 channels."""
    encoder = "mobilenetv3_small_100"
    repo = timm.models.get_pretrained_cfg(encoder).hf_hub_id
    reference = timm.create_model(encoder, pretrained=False)
    snapshot = empty_hf_cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    safetensors.torch.save_file(reference.state_dict(), snapshot / "model.safetensors")

    scratch, auto = TimmUNet(encoder, 4, 3, pretrained=False), TimmUNet(encoder, 4, 3, pretrained="auto")
    stem = reference.conv_stem.weight
    assert auto.encoder.conv_stem.weight.shape == (stem.shape[0], 4, *stem.shape[2:])
    assert torch.equal(auto.encoder.blocks[1][0].conv_pw.weight, reference.blocks[1][0].conv_pw.weight)
    assert not torch.equal(scratch.encoder.blocks[1][0].conv_pw.weight, reference.blocks[1][0].conv_pw.weight)


def test_create_unet_by_name_inside_a_processor():
    """``timm:<encoder>`` through the Processor's create_unet path: 3 image + 1 level channel in, zero head."""
    pre = Processor(3, 3, "identity", unet="timm:resnet18", conditioned=True)
    assert isinstance(pre.unet, TimmUNet) and pre.unet.encoder.conv1.in_channels == 4
    x = torch.rand(2, 3, 37, 50)
    with torch.no_grad():
        assert torch.equal(pre(x, torch.tensor([1.0, -2.0])), x)
    assert isinstance(create_unet("timm:resnet18", 4, 3), TimmUNet)
    with pytest.raises(InputError, match="timm:<encoder>"):
        create_unet("resnet18", 3, 3)
