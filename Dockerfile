# sandwich in a container: `docker build -t sandwich .` then
#   docker run --rm -v "$PWD/out:/out" sandwich demo --out /out/demo-report
#   docker run --rm -v "$PWD/runs:/opt/sandwich/runs" sandwich train experiment=gray_jpeg
FROM python:3.11-slim
WORKDIR /opt/sandwich
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
RUN pip install --no-cache-dir -e '.[test]'
# Compile the numba kernels (block codec with 8x8 blocks, and the JPEG proxy's colour stages; float32:
# what training uses) into numba's on-disk cache, so that a container does not spend its first step
# compiling them.
RUN python -c "import torch; from sandwich.codecs.jpeg_proxy import JpegProxy; \
[JpegProxy(s, quality=50)(torch.rand(1, 3, 16, 16, requires_grad=True) * 255).recon.sum().backward() for s in ('444', '420')]"
COPY tests ./tests
ENV SANDWICH_CONF=/opt/sandwich/conf
ENTRYPOINT ["sandwich"]
CMD ["--help"]
