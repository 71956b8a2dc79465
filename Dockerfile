# sandwich in a container: `docker build -t sandwich .` then
#   docker run --rm -v "$PWD/out:/out" sandwich demo --out /out/demo-report
#   docker run --rm -v "$PWD/runs:/opt/sandwich/runs" sandwich train experiment=gray_jpeg
FROM python:3.11-slim
WORKDIR /opt/sandwich
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
RUN pip install --no-cache-dir -e '.[test]'
# Compile the numba block-codec kernels (8x8 blocks, float32: what training uses) into numba's on-disk
# cache, so that a container does not spend its first step compiling them.
RUN python -c "import torch; from sandwich.codecs.blockcodec import transform_quantize as tq; \
x = torch.rand(1, 1, 8, 8, requires_grad=True); tq(x, torch.tensor(2.0), impl='numba').recon.sum().backward()"
COPY tests ./tests
ENV SANDWICH_CONF=/opt/sandwich/conf
ENTRYPOINT ["sandwich"]
CMD ["--help"]
