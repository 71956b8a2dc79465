"""Stand-ins for the README's claims that run in seconds, and its figures recomputed by code that is not ours.

The headline claims (a sandwich beats its codec on photos of a source it never saw) need minutes of
training; these tests hold smaller versions of them that a broken training loop, codec or metric fails:
a post-filter trained for 300 steps raises PSNR at q20 on SPORCO photos; the evaluation's PSNR, PSNR-Y
and MS-SSIM of a model with a post-processor equal numpy's and scikit-image's from the image
``sandwich decode`` wrote. (The demo's own test asserts the gray sandwich's gain over luma-only JPEG:
``tests/test_cli.py``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import correlate1d
from skimage.metrics import peak_signal_noise_ratio

from sandwich.cli import main
from sandwich.config import compose
from sandwich.data.images import centre_crop, read_image
from sandwich.data.samples import load_photo
from sandwich.evaluate.checkpoint import load_module
from sandwich.metrics.psnr import mse, psnr
from sandwich.sample_format import to_tensor
from sandwich.scenarios.registry import create_module
from sandwich.training import quiet_lightning, train

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@pytest.mark.slow
def test_a_short_post_filter_raises_psnr_on_another_source(tmp_path: Path) -> None:
    """rgb_jpeg420's post-processor alone (the pre-processor the identity, so the bits are JPEG's), trained
    300 steps on scikit-image crops, raises PSNR at q20 on two SPORCO photos (measured +0.04 and +0.06 dB;
    the run is seeded and deterministic)."""
    quiet_lightning()
    config = compose([
        "experiment=rgb_jpeg420", "scenario.pre_learned=false", f"out_dir={tmp_path}", "logger=csv", "trainer.max_steps=300",
        "data.crop=64", "data.batch_size=8", "data.val_crop=96", "data.batches_per_epoch=100", "trainer.enable_progress_bar=false",
        "log_images=0", "codec.val_knobs=[20]",
    ])
    module = load_module(train(config))
    for name in ("sporco/kodim23", "sporco/monarch"):
        x = to_tensor(centre_crop(load_photo(name), 256))[None]
        out = module.code_real(x, 20)
        gain = float(psnr(mse(x, out.recon.clamp(0, 1)))[0] - psnr(mse(x, out.decoded))[0])
        assert gain >= 0.03, (name, gain)


def _window_filter(image: np.ndarray, borders: bool = False) -> np.ndarray:
    """The 11-tap Gaussian (σ 1.5) local mean of a 2-D array: where the window fits (valid region), or with
    ``borders`` at every sample, the image mirrored about its edges."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()
    mode = "mirror" if borders else "constant"
    filtered = correlate1d(correlate1d(image, taps, axis=0, mode=mode), taps, axis=1, mode=mode)
    return filtered if borders else filtered[5:-5, 5:-5]


def ms_ssim_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (Wang, Simoncelli and Bovik 2003) of two ``(H, W, C)`` arrays on [0, 1] in float64 numpy: five
    scales (2x2 means between them); at each, the contrast-structure term averaged over every channel's valid
    window positions (at the last, the SSIM term, averaged over every sample with mirrored borders, as
    torchmetrics defines it), a negative mean set to 0; their product with the standard weights."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = a.astype(np.float64), b.astype(np.float64)
    terms = []
    for scale in range(5):
        maps = []
        last = scale == 4
        for channel in range(x.shape[2]):
            u, v = x[..., channel], y[..., channel]
            mu, mv = _window_filter(u, last), _window_filter(v, last)
            var_u, var_v = (np.maximum(_window_filter(z * z, last) - m * m, 0) for z, m in ((u, mu), (v, mv)))
            cs = (2 * (_window_filter(u * v, last) - mu * mv) + c2) / (var_u + var_v + c2)
            maps.append((2 * mu * mv + c1) / (mu * mu + mv * mv + c1) * cs if last else cs)
        terms.append(max(float(np.mean(maps)), 0.0))
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        x, y = (z[:h, :w].reshape(h // 2, 2, w // 2, 2, -1).mean((1, 3)) for z in (x, y))
    return float(np.prod([t**beta for t, beta in zip(terms, MS_SSIM_BETAS, strict=True)]))


def test_evaluation_metrics_equal_independent_ones_on_the_decoded_file(tmp_path: Path) -> None:
    """sandwich eval's PSNR, PSNR-Y and MS-SSIM of a sandwich with a post-processor (weights perturbed, so it
    changes the picture), recomputed from the PNG sandwich decode writes with scikit-image (PSNR) and numpy
    (PSNR-Y, MS-SSIM)."""
    config = compose(["experiment=rgb_jpeg420", "net=u8_16", f"out_dir={tmp_path}"])
    module = create_module(config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    ckpt = tmp_path / "model.ckpt"
    torch.save({"sandwich_config": config, "state_dict": module.state_dict()}, ckpt)
    folder = tmp_path / "photos"
    folder.mkdir()
    source = load_photo("sporco/monarch")[100:292, 200:456].copy()
    Image.fromarray(source).save(folder / "monarch.png")
    knobs = [20, 40, 60, 80]
    assert main(["eval", "--ckpt", str(ckpt), "--images", str(folder), "--out", str(tmp_path / "report"), "--knobs", *map(str, knobs)]) == 0
    results = json.loads((tmp_path / "report" / "results.json").read_text())["results"]
    for i, knob in enumerate(knobs):
        assert main(["encode", "--ckpt", str(ckpt), str(folder / "monarch.png"), str(tmp_path / f"q{knob}.jpg"), "--knob", str(knob)]) == 0
        assert main(["decode", "--ckpt", str(ckpt), str(tmp_path / f"q{knob}.jpg"), str(tmp_path / f"q{knob}.png")]) == 0
        decoded = read_image(tmp_path / f"q{knob}.png")
        assert results["psnr-rgb"][i] == pytest.approx(peak_signal_noise_ratio(source, decoded, data_range=255), abs=1e-4)
        luma = [img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) for img in (source, decoded)]
        assert results["psnr-y"][i] == pytest.approx(10 * np.log10(255**2 / np.mean((luma[0] - luma[1]) ** 2)), abs=1e-4)
        assert results["ms-ssim-rgb"][i] == pytest.approx(ms_ssim_numpy(source / 255.0, decoded / 255.0), abs=1e-5)
