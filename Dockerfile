# sandwich in a container: `docker build -t sandwich .` then
#   docker run --rm -v "$PWD/out:/out" sandwich demo --out /out/demo-report
#   docker run --rm -v "$PWD/runs:/opt/sandwich/runs" sandwich train experiment=gray_jpeg
FROM python:3.11-slim
WORKDIR /opt/sandwich
COPY pyproject.toml README.md ./
COPY src ./src
COPY conf ./conf
RUN pip install --no-cache-dir -e '.[test]'
COPY tests ./tests
ENV SANDWICH_CONF=/opt/sandwich/conf
ENTRYPOINT ["sandwich"]
CMD ["--help"]
