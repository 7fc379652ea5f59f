# syntax=docker/dockerfile:1
# loraroute's HTTP server on CPU (PyTorch and ONNX Runtime backends). The model directories are mounted read-only at
# /models, and the container will not start without an API key: it listens on every interface.
#
#   docker build -t loraroute .
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" -e LORAROUTE_API_KEY="$(cat api.key)" loraroute
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" \
#     -v "$PWD/api.key:/run/secrets/loraroute_api_key:ro" loraroute      # a key file (also a compose/swarm secret)
#
# Arguments after the image name go to `loraroute serve` (e.g. --backend onnx-int8 --access-log --log-format json);
# the health check expects the default port 8080.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

WORKDIR /build
COPY constraints.txt ./
# torch first, on its own, at the version constraints.txt pins: PyPI's Linux wheel is the multi-GB CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install "torch==$(sed -n 's/^torch==\([^ #]*\).*/\1/p' constraints.txt)" --index-url "$TORCH_INDEX"
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install -c constraints.txt ".[serve,onnx]" && cd / && rm -rf /build

COPY --chmod=0755 <<'EOF' /usr/local/bin/loraroute-entrypoint
#!/bin/sh
# `loraroute serve` on /models, only with an API key: $LORAROUTE_API_KEY, a key file at /run/secrets/loraroute_api_key,
# or --api-key-file FILE among the arguments.
set -eu
secret=/run/secrets/loraroute_api_key
case " $* " in
  *" --api-key-file"*) ;;
  *)
    if [ -s "$secret" ]; then
      set -- --api-key-file "$secret" "$@"
    elif [ -z "${LORAROUTE_API_KEY:-}" ]; then
      echo "loraroute: no API key: set LORAROUTE_API_KEY, mount a key file at $secret, or pass --api-key-file FILE" >&2
      exit 64
    fi ;;
esac
exec loraroute serve --models-dir /models --host 0.0.0.0 --port 8080 "$@"
EOF

RUN useradd --create-home --uid 10001 --user-group loraroute && mkdir /models
USER loraroute
WORKDIR /home/loraroute
EXPOSE 8080
# Healthy once the server answers /health (no API key needed) with "healthy": "no_models" when /models has none.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-c", "import json, urllib.request as u; r = json.load(u.urlopen('http://127.0.0.1:8080/health', timeout=4)); raise SystemExit(r.get('status') != 'healthy')"]
ENTRYPOINT ["loraroute-entrypoint"]
