# Production image of oneauth (and oneauth-verifier, which it depends on).
# Every third-party version comes from requirements/run.txt (hashed pins made by `make lock`,
# the same file `make run` installs); the two wheels of this repository are built here and
# installed on top with --no-deps, so the build resolves nothing and fetches no unpinned package
# at runtime (hatchling, the build backend, is the only unpinned download: build stage only).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/oneauth
COPY requirements/run.txt requirements/run.txt
RUN /opt/oneauth/bin/pip install --require-hashes --no-deps -r requirements/run.txt
COPY pyproject.toml README.md ./
COPY packages/verifier packages/verifier
COPY service service
COPY sql sql
COPY schemas schemas
# Two wheels: oneauth-verifier (which also carries the version both read) and the server.
RUN /opt/oneauth/bin/pip wheel --no-deps --wheel-dir /wheels ./packages/verifier . \
 && /opt/oneauth/bin/pip install --no-deps /wheels/*.whl \
 && /opt/oneauth/bin/pip check

FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid: volume permissions and `runAsUser` policies can name it.
RUN groupadd --system --gid 10001 oneauth \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin oneauth
COPY --from=build /opt/oneauth /opt/oneauth
ENV PATH=/opt/oneauth/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ONEAUTH_ENV=production \
    ONEAUTH_HOST=0.0.0.0 \
    ONEAUTH_PORT=8000
USER 10001:10001
EXPOSE 8000
# GET /healthz on ONEAUTH_PORT as set when the container runs (not this file's 8000), on
# loopback when ONEAUTH_HOST is a wildcard. Standard library only, without site-packages (-I -S):
# a probe every 10 s costs milliseconds. The start period covers the first Postgres connection.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-I", "-S", "-c", "import os, sys, urllib.request; host = os.environ.get('ONEAUTH_HOST') or '127.0.0.1'; host = '127.0.0.1' if host in ('0.0.0.0', '::') else host; port = os.environ.get('ONEAUTH_PORT') or '8000'; sys.exit(0 if urllib.request.urlopen('http://%s:%s/healthz' % (host, port), timeout=4).status == 200 else 1)"]
# Run `oneauth migrate` as a release step before starting new replicas (compose.yaml: the
# one-shot `migrate` service); the serving role cannot change schemas (D1).
CMD ["oneauth", "serve", "--workers", "2"]
