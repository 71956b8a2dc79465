# sandwich on NVIDIA GPUs. Build:  docker build -t sandwich .
# Run (the NVIDIA container toolkit gives the container the host's driver; runs land in ./runs):
#   docker run --rm --gpus all -v "$PWD/runs:/workspace/runs" sandwich train experiment=gray_jpeg trainer=ddp trainer.devices=2
#   docker run --rm --gpus all -e WANDB_API_KEY -v "$PWD/runs:/workspace/runs" --entrypoint wandb sandwich agent ENTITY/PROJECT/SWEEP_ID
# On a SLURM cluster, Apptainer runs the same image: see README.md, "Containers".
FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04

# Python 3.11 (the version the project pins) and git (each run records its commit when the code is a checkout).
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv git \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 sandwich
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    SANDWICH_CONF=/opt/sandwich/conf \
    NUMBA_CACHE_DIR=/opt/sandwich/numba-cache \
    PYTHONUNBUFFERED=1
RUN python3.11 -m venv /opt/venv

# The package (torch's wheels bring their own CUDA libraries; the codec wheels bring libjpeg-turbo, x265,
# SVT-AV1 and libjxl), then the configuration and sweeps it reads at run time.
WORKDIR /opt/sandwich
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
COPY conf ./conf
COPY sweeps ./sweeps
RUN mkdir -p "$NUMBA_CACHE_DIR" /workspace && chown -R sandwich /opt/sandwich /workspace

# A non-root user; numba's kernels (block codec, JPEG proxy colour stages) compiled into its cache now,
# so that a container does not spend its first training step compiling them.
USER sandwich
RUN python -c "import torch; from sandwich.codecs.jpeg_proxy.proxy import JpegProxy; \
[JpegProxy(s, quality=50)(torch.rand(1, 3, 16, 16, requires_grad=True) * 255).recon.sum().backward() for s in ('444', '420')]"

WORKDIR /workspace
ENTRYPOINT ["sandwich"]
CMD ["--help"]
