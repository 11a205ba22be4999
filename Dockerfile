# troly: the assistant as a container image.
#   docker build -t troly:local .
#   docker run --rm --env-file deploy/troly.env troly:local doctor
# compose.yaml runs it with PostgreSQL, two webhook workers and Caddy (see the README,
# "Deployment").

# ---------------------------------------------------------------------------- build stage
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# The project and its runtime dependencies (no dev extras) in a virtual environment that the
# runtime stage copies whole. Every dependency has a wheel for this platform: no compiler.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY bot ./bot
COPY handlers ./handlers
COPY knowledge ./knowledge
COPY scheduler ./scheduler
COPY web ./web
RUN pip install --no-cache-dir .

# ---------------------------------------------------------------------------- runtime stage
FROM python:3.11.13-slim-bookworm

# KNOWLEDGE_CACHE_DIR: the knowledge base's validated index, built below at build time.
# DATABASE_URL: SQLite in the volume unless set (compose.yaml sets PostgreSQL).
# WEBHOOK_HOST/PORT: where webhook mode listens, behind the reverse proxy (polling mode
# opens no port).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    KNOWLEDGE_CACHE_DIR=/opt/troly/cache \
    TASKS_DIR=/opt/troly/tasks \
    DATABASE_URL=sqlite+aiosqlite:////opt/troly/var/troly.db \
    WEBHOOK_HOST=0.0.0.0 \
    WEBHOOK_PORT=8080

RUN groupadd --system --gid 10001 troly \
    && useradd --system --uid 10001 --gid troly --home-dir /opt/troly \
        --shell /usr/sbin/nologin troly \
    && mkdir -p /opt/troly/var /opt/troly/cache /opt/troly/tasks \
    && chown -R troly:troly /opt/troly

COPY --from=build /opt/venv /opt/venv

WORKDIR /opt/troly
# The troly user created above (numeric, so the host can resolve it).
USER 10001:10001

# Validate the knowledge base and build its index (and the entries' embeddings) now, so a
# container starts without indexing. The cache folder stays writable: a knowledge folder
# mounted later (KNOWLEDGE_DIR) is indexed on first start and kept there.
RUN troly kb check && troly kb build

EXPOSE 8080
VOLUME ["/opt/troly/var", "/opt/troly/tasks"]

# Webhook mode: /healthz answers 200 while the database answers (503 otherwise). Polling mode
# (no WEBHOOK_BASE_URL) has no HTTP server, so there is nothing to probe. No curl in slim.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; os.environ.get('WEBHOOK_BASE_URL') and urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WEBHOOK_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["troly"]
CMD ["run"]
