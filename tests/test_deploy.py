"""Using a trained sandwich: ``sandwich encode``/``decode`` round trips against ``sandwich eval``'s pass, the files
opened by decoders nobody here wrote, ONNX export parity, safe checkpoints, refusals and pretrained models."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import torch
from PIL import Image

from sandwich import pretrained
from sandwich.cli import main
from sandwich.codecs.real.av1 import Av1Codec
from sandwich.codecs.real.base import RealCodec
from sandwich.codecs.real.hevc import HevcCodec
from sandwich.codecs.real.yuv import to_samples, ycbcr_to_rgb
from sandwich.config import compose
from sandwich.data.images import read_image
from sandwich.data.samples import load_photo
from sandwich.deploy.container import Header, read_header, read_pictures
from sandwich.evaluate.checkpoint import load_module, weights_digest
from sandwich.sample_format import to_array, to_tensor
from sandwich.scenarios.base import CodedImage, SandwichModule
from sandwich.scenarios.registry import create_module

# experiment (and overrides) -> the suffix of its files; every codec and every scenario module
CASES = {
    "rgb_jpeg420": ("jpeg", []),
    "gray_jpeg": ("jpeg", []),
    "sr2_jpeg": ("jpeg", []),
    "stereo_jpeg": ("jpeg", []),
    "rgba_jpeg": ("jpeg", []),
    "hdr12_jpeg": ("jpeg", []),
    "rgb_hevc": ("hevc", []),
    "rgb_av1": ("av1", []),
    "rgb_webp": ("webp", ["experiment=rgb_jpeg420", "codec=webp"]),
    "rgb_jxl": ("jxl", ["experiment=rgb_jpeg420", "codec=jxl"]),
}
SUFFIX = {"jpeg": ".jpg", "hevc": ".hevc", "av1": ".avif", "webp": ".webp", "jxl": ".jxl"}


def checkpoint(folder: Path, case: str, seed: int = 0) -> Path:
    """A checkpoint of ``case`` whose weights are its initial ones plus noise (so that both processors change
    the picture), as ``sandwich train`` stores configuration and weights."""
    overrides = CASES[case][1] or [f"experiment={case}"]
    config = compose([*overrides, "net=u8_16", f"out_dir={folder}"])
    module = create_module(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    path = folder / f"{case}-{seed}.ckpt"
    torch.save({"sandwich_config": config, "state_dict": module.state_dict()}, path)
    return path


def read_coded(path: Path, real: RealCodec) -> tuple[CodedImage, Header]:
    """(the coded image that picture file ``path`` belongs to, its header), read as sandwich decode reads it."""
    header, base, _ = read_header(path)
    return read_pictures(header, base, real), header


def source_file(folder: Path, module: SandwichModule, name: str = "photo") -> Path:
    """A photo crop of odd size in the file type the module reads: PNG, RGBA PNG, 16-bit PNG or .npy."""
    rgb = load_photo("skimage/coffee")[60:131, 90:193].copy()
    folder.mkdir(parents=True, exist_ok=True)
    if module.channels == 6:
        path = folder / f"{name}.npy"
        np.save(path, np.concatenate([rgb, rgb[:, ::-1]], axis=2))
    elif module.channels == 4:
        path = folder / f"{name}.png"
        alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :, None].repeat(rgb.shape[0], 0)
        Image.fromarray(np.concatenate([rgb, alpha], axis=2), mode="RGBA").save(path)
    elif module.bit_depth > 8:
        path = folder / f"{name}.png"
        path.write_bytes(imagecodecs.png_encode(rgb.astype(np.uint16) * 257))
    else:
        path = folder / f"{name}.png"
        Image.fromarray(rgb).save(path)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_equals_eval(tmp_path: Path, case: str) -> None:
    """encode then decode gives sandwich eval's output at that knob bit for bit, and the files' payload bits are eval's."""
    ckpt = checkpoint(tmp_path, case)
    module = load_module(ckpt)
    source = source_file(tmp_path / "in", module)
    knob = module.codec.knobs[1]
    coded = tmp_path / f"out/photo{SUFFIX[CASES[case][0]]}"
    assert main(["encode", "--ckpt", str(ckpt), str(source), str(coded), "--knob", str(knob)]) == 0
    first = coded if module.adapter.pictures == 1 else coded.with_name(f"photo.0{coded.suffix}")
    decoded = tmp_path / ("photo.npy" if module.channels == 6 else "photo.png")
    assert main(["decode", "--ckpt", str(ckpt), str(first), str(decoded)]) == 0

    x = to_tensor(read_image(source, module.channels, module.bit_depth), module.bit_depth)[None]
    evaluated = module.code_real(x, knob)
    assert np.array_equal(read_image(decoded, module.channels, module.bit_depth), to_array(evaluated.recon[0], module.bit_depth))
    stored, _ = read_coded(first, module.codec.real)
    assert stored.payload_bits == int(evaluated.bits[0])
    assert len(stored.pictures) == module.adapter.pictures


def test_folders_mirror_the_tree_and_bpp_targets(tmp_path: Path) -> None:
    ckpt = checkpoint(tmp_path, "rgb_jpeg420")
    module = load_module(ckpt)
    source_file(tmp_path / "in", module, "a")
    source_file(tmp_path / "in" / "deep", module, "b")
    assert main(["encode", "--ckpt", str(ckpt), str(tmp_path / "in"), str(tmp_path / "enc"), "--bpp", "1.0"]) == 0
    assert {p.relative_to(tmp_path / "enc").as_posix() for p in (tmp_path / "enc").rglob("*.jpg")} == {"a.jpg", "deep/b.jpg"}
    assert main(["decode", "--ckpt", str(ckpt), str(tmp_path / "enc"), str(tmp_path / "dec")]) == 0
    assert {p.relative_to(tmp_path / "dec").as_posix() for p in (tmp_path / "dec").rglob("*")} >= {"a.png", "deep/b.png"}
    stored, header = read_coded(tmp_path / "enc" / "a.jpg", module.codec.real)
    pixels = header.height * header.width
    assert stored.payload_bits / pixels <= 1.0
    x = to_tensor(read_image(tmp_path / "in" / "a.png"))[None]
    assert module.encode(x, header.knob + 1).payload_bits / pixels > 1.0  # the next quality misses the target


def external(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} is not installed (Debian: .ci/run installs it with `make debian-decoders`)")
    return found


def picture(tmp_path: Path, case: str, suffix: str | None = None) -> tuple[Path, SandwichModule]:
    ckpt = checkpoint(tmp_path, case)
    module = load_module(ckpt)
    out = tmp_path / f"photo{suffix or SUFFIX[CASES[case][0]]}"
    assert main(["encode", "--ckpt", str(ckpt), str(source_file(tmp_path / "in", module)), str(out)]) == 0
    return out, module


@pytest.mark.parametrize(("case", "tool"), [("rgb_jpeg420", "djpeg"), ("rgb_webp", "dwebp"), ("rgb_jxl", "djxl")])
def test_image_decoders_open_the_files(tmp_path: Path, case: str, tool: str) -> None:
    """Debian's djpeg, dwebp and djxl give our decode before the post-processor (djxl, another libjxl, within one level)."""
    executable = external(tool)
    path, module = picture(tmp_path, case)
    ppm = tmp_path / "decoded.ppm"
    args = {"djpeg": [executable, "-outfile", str(ppm), str(path)], "dwebp": [executable, "-quiet", str(path), "-ppm", "-o", str(ppm)], "djxl": [executable, str(path), str(ppm)]}[tool]
    subprocess.run(args, check=True, capture_output=True)
    theirs = np.asarray(Image.open(ppm)).astype(int)
    ours = module.codec.real.decode(path.read_bytes()).astype(int)
    tolerance = 1 if tool == "djxl" else 0  # JPEG XL conforms to a tolerance, not bit for bit (Debian's libjxl 0.7 vs the wheel's)
    assert theirs.shape == ours.shape and np.abs(theirs - ours).max() <= tolerance


@pytest.mark.parametrize(("case", "suffix", "tool"), [("rgb_hevc", ".hevc", "ffmpeg"), ("rgb_av1", ".obu", "dav1d"), ("rgb_av1", ".avif", "ffmpeg")])
def test_video_decoders_open_the_streams(tmp_path: Path, case: str, suffix: str, tool: str) -> None:
    """ffmpeg's own HEVC decoder, dav1d (raw OBUs) and ffmpeg (AVIF) give the planes our decode converts to RGB."""
    executable = external(tool)
    path, module = picture(tmp_path, case, suffix)
    raw = tmp_path / "decoded.yuv"
    args = [executable, "-q", "-i", str(path), "-o", str(raw)] if tool == "dav1d" else [executable, "-v", "error", "-y", "-i", str(path), "-f", "rawvideo", str(raw)]
    subprocess.run(args, check=True, capture_output=True)
    real = module.codec.real
    assert isinstance(real, (HevcCodec, Av1Codec))
    stream, _ = read_coded(path, real)
    ours = np.concatenate([p.ravel() for p in real.decode_planes(stream.pictures[0].data)])
    assert np.array_equal(np.fromfile(raw, np.uint8), ours)


def test_libheif_opens_the_avif_files(tmp_path: Path) -> None:
    """libheif (heif-dec, or heif-convert before libheif 1.17) reads the AVIF file's planes as our decode does and
    converts them with the full-range BT.601 matrix the file signals; its chroma up-sampling is nearest-neighbour
    (ours is the triangle filter), so its RGB is compared with our planes converted that way."""
    executable = shutil.which("heif-dec") or external("heif-convert")
    path, module = picture(tmp_path, "rgb_av1")
    png = tmp_path / "decoded.png"
    subprocess.run([executable, str(path), str(png)], check=True, capture_output=True)
    stream, _ = read_coded(path, module.codec.real)
    y, cb, cr = (p.astype(float) for p in module.codec.real.decode_planes(stream.pictures[0].data))
    nearest = [np.repeat(np.repeat(c, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]] for c in (cb, cr)]
    ours = to_samples(ycbcr_to_rgb(np.stack([y, *nearest], axis=-1), 8), 8).astype(int)
    theirs = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert theirs.shape == ours.shape and np.abs(theirs - ours).max() <= 1


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


def test_refusals_leave_outputs_as_they_were(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ckpt = checkpoint(tmp_path, "rgb_jpeg420")
    other = checkpoint(tmp_path, "rgb_jpeg420", seed=1)
    hevc = checkpoint(tmp_path, "rgb_hevc")
    module = load_module(ckpt)
    source = source_file(tmp_path / "in", module)

    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    code, err = run_cli(capsys, "encode", "--ckpt", str(ckpt), str(fake), str(tmp_path / "fake.jpg"))
    assert code == 2 and "fake.png" in err and len(err.splitlines()) == 1 and not (tmp_path / "fake.jpg").exists()

    code, err = run_cli(capsys, "encode", "--ckpt", str(hevc), str(source), str(tmp_path / "x.jpg"))
    assert code == 2 and ".hevc" in err and not (tmp_path / "x.jpg").exists()

    stereo = checkpoint(tmp_path, "stereo_jpeg")
    code, err = run_cli(capsys, "encode", "--ckpt", str(stereo), str(source), str(tmp_path / "s.jpg"))
    assert code == 2 and "channel" in err and not list(tmp_path.glob("s*.jpg"))

    coded = tmp_path / "photo.jpg"
    assert main(["encode", "--ckpt", str(ckpt), str(source), str(coded)]) == 0
    before = coded.read_bytes()
    code, err = run_cli(capsys, "encode", "--ckpt", str(ckpt), str(source), str(coded), "--knob", "90")
    assert code == 2 and "--force" in err and coded.read_bytes() == before
    assert main(["encode", "--ckpt", str(ckpt), str(source), str(coded), "--knob", "90", "--force"]) == 0 and coded.read_bytes() != before

    code, err = run_cli(capsys, "decode", "--ckpt", str(other), str(coded), str(tmp_path / "o.png"))
    assert code == 2 and weights_digest(module) in err and not (tmp_path / "o.png").exists()

    code, err = run_cli(capsys, "decode", "--ckpt", str(hevc), str(coded), str(tmp_path / "h.png"))
    assert code == 2 and "coded with jpeg" in err and not (tmp_path / "h.png").exists()

    plain = tmp_path / "plain.jpg"
    Image.fromarray(read_image(source)).save(plain)
    code, err = run_cli(capsys, "decode", "--ckpt", str(ckpt), str(plain), str(tmp_path / "p.png"))
    assert code == 2 and "sandwich header" in err and not (tmp_path / "p.png").exists()

    code, err = run_cli(capsys, "decode", "--ckpt", str(ckpt), str(coded), str(tmp_path / "p.npy"))
    assert code == 2 and ".png" in err and not (tmp_path / "p.npy").exists()

    stream = tmp_path / "photo.hevc"
    assert main(["encode", "--ckpt", str(hevc), str(source), str(stream)]) == 0
    (tmp_path / "photo.hevc.json").write_text("{not json")
    code, err = run_cli(capsys, "decode", "--ckpt", str(hevc), str(stream), str(tmp_path / "s.png"))
    assert code == 2 and "unreadable sandwich header" in err and not (tmp_path / "s.png").exists()


class Payload:
    """Pickles as a call of ``os.system``: loading it with plain pickle would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = compose(["experiment=rgb_jpeg420", "net=none", f"out_dir={tmp_path}"])
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"sandwich_config": config, "state_dict": create_module(config).state_dict(), "extra": Payload(marker)}, evil)
    for command in (["eval", "--ckpt", str(evil), "--samples", "sporco", "--out", str(tmp_path / "r")], ["export", "--ckpt", str(evil), "--onnx", str(tmp_path / "g")]):
        code, err = run_cli(capsys, *command)
        assert code == 2 and "refused" in err and "system" in err and len(err.splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "r").exists() and not (tmp_path / "g").exists()


@pytest.mark.parametrize("case", ["gray_jpeg", "sr2_jpeg"])
def test_onnx_export_matches_torch(tmp_path: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    """The export's own check passes (onnxruntime within 1e-4 of torch on a photo), the graphs take other sizes,
    and decoding through onnxruntime gives torch's image within one level."""
    ckpt = checkpoint(tmp_path, case)
    graphs = tmp_path / "onnx"
    assert main(["export", "--ckpt", str(ckpt), "--onnx", str(graphs)]) == 0
    assert "max |difference|" in capsys.readouterr().out
    module = load_module(ckpt)
    from sandwich.deploy.onnx_export import parity

    x = to_tensor(load_photo("skimage/rocket")[:83, :117].copy())[None]
    assert max(parity(module, graphs, x, module.codec.knobs[0]).values()) <= 1e-4
    source = source_file(tmp_path / "in", module)
    assert main(["encode", "--ckpt", str(ckpt), str(source), str(tmp_path / "p.jpg")]) == 0
    assert main(["decode", "--ckpt", str(ckpt), str(tmp_path / "p.jpg"), str(tmp_path / "torch.png")]) == 0
    assert main(["decode", "--ckpt", str(ckpt), str(tmp_path / "p.jpg"), str(tmp_path / "onnx.png"), "--runtime", "onnx", "--onnx", str(graphs)]) == 0
    assert np.abs(read_image(tmp_path / "torch.png").astype(int) - read_image(tmp_path / "onnx.png")).max() <= 1


def test_pretrained_models_load_weights_only_and_have_cards(capsys: pytest.CaptureFixture) -> None:
    names = pretrained.names()
    assert {"rgb_jpeg420", "gray_jpeg", "sr2_jpeg", "lpips_jpeg"} <= set(names)
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    total = 0
    for name in names:
        module = load_module(pretrained.model_path(name))
        assert module.config["name"] == name and name in listed
        card = pretrained.card(name)
        assert "sandwich train experiment=" in card and "BD-rate" in card and "sporco" in card.lower()
        total += pretrained.model_path(name).stat().st_size
    assert total < 8e6  # a few MB in all


def test_pretrained_model_round_trip(tmp_path: Path) -> None:
    module = load_module(pretrained.model_path("rgb_jpeg420"))
    source = source_file(tmp_path / "in", module)
    assert main(["encode", "--model", "rgb_jpeg420", str(source), str(tmp_path / "p.jpg"), "--knob", "30"]) == 0
    assert main(["decode", "--model", "rgb_jpeg420", str(tmp_path / "p.jpg"), str(tmp_path / "p.png")]) == 0
    x = to_tensor(read_image(source))[None]
    assert np.array_equal(read_image(tmp_path / "p.png"), to_array(module.code_real(x, 30).recon[0]))


def test_model_names_work_where_checkpoints_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--model NAME in eval (a report on one small photo) and report (a family member cached apart from runs);
    an unknown name is one line naming the models there are."""
    from sandwich.evaluate.family import find_members

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(load_photo("skimage/rocket")[:64, :96].copy()).save(folder / "r.png")
    assert main(["eval", "--model", "rgb_jpeg420", "--images", str(folder), "--out", str(tmp_path / "r"), "--knobs", "20", "40", "60", "80"]) == 0
    assert (tmp_path / "r" / "results.json").is_file()
    capsys.readouterr()
    [member] = find_members([], models=["rgb_jpeg420"])
    assert member.checkpoint == pretrained.model_path("rgb_jpeg420") and "pretrained" in member.folder.parts
    code, err = run_cli(capsys, "encode", "--model", "nope", str(folder / "r.png"), str(tmp_path / "x.jpg"))
    assert code == 2 and "rgb_jpeg420" in err and len(err.splitlines()) == 1
