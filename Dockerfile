# logreg-service container image.
#
#   docker build -t logreg-service .
#   docker run -p 127.0.0.1:8000:8000 -v logreg-models:/data/model_store logreg-service
#
# Stage 1 builds the project's wheel; stage 2 installs that wheel (and its dependencies) into a
# virtual environment and runs `logreg serve` as an unprivileged user.
#
# PIP_INDEX_URL may be passed as a build argument (--build-arg PIP_INDEX_URL=...) where PyPI is
# reached through a mirror; nothing here names one.
#
# LOGREG_EXTRAS names optional extras to install with the wheel: `--build-arg LOGREG_EXTRAS=dask` gives the
# image that trains on a Dask cluster and runs its scheduler and workers (`dask scheduler`, `dask worker`;
# docker-compose.yml's `distributed` profile builds it as logreg-service:dask). Without it the image stays
# as small as before (no pandas, dask or distributed).

############################
# build: the wheel
############################
FROM python:3.11-slim AS build

ARG PIP_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# .dockerignore keeps the virtualenvs, the model registry, caches and tests out of the context.
COPY . .
# The guide (docs/, MkDocs) is built into the package, so the image serves it at /guide, offline.
RUN python -m pip install --no-cache-dir 'mkdocs>=1.6' 'mkdocs-material>=9.5' \
    && NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --quiet \
    && python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

############################
# runtime
############################
FROM python:3.11-slim AS runtime

ARG PIP_INDEX_URL
ARG LOGREG_EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# An unprivileged user that owns the model registry. Numeric ids so that orchestrators which
# require a non-root user (e.g. runAsNonRoot) can verify it.
RUN groupadd --gid 10001 logreg \
    && useradd --uid 10001 --gid logreg --no-log-init --home-dir /home/logreg --create-home \
        --shell /usr/sbin/nologin logreg \
    && mkdir -p /data/model_store /data/training \
    && chown -R logreg:logreg /data

# The exact versions of requirements.lock (requirements-dask.lock with the dask extra; `make lock` refreshes
# them), then the wheel without resolving anything again: the image is the same whenever it is built.
COPY requirements.lock requirements-dask.lock /tmp/lock/
COPY --from=build /dist/ /tmp/dist/
RUN python -m venv "$VIRTUAL_ENV" \
    && lock="/tmp/lock/requirements${LOGREG_EXTRAS:+-$LOGREG_EXTRAS}.lock" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir --no-deps -r "$lock" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir --no-deps /tmp/dist/*.whl \
    && "$VIRTUAL_ENV/bin/pip" check \
    && rm -rf /tmp/dist /tmp/lock \
    && logreg --help > /dev/null

# `logreg serve` reads its defaults from these; override them with -e / compose `environment:`.
ENV LOGREG_HOST=0.0.0.0 \
    LOGREG_PORT=8000 \
    LOGREG_WORKERS=2 \
    LOGREG_MODEL_STORE=/data/model_store

WORKDIR /home/logreg
USER 10001:10001

# The model registry lives on a volume so that models survive container restarts and can be shared
# by several replicas.
VOLUME ["/data/model_store"]
EXPOSE 8000

# Liveness through the standard library only (the image has no curl). Proxies are bypassed: the
# probe always goes to the server in this container.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('LOGREG_PORT', '8000'), timeout=4)"]

CMD ["logreg", "serve"]
