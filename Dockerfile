# Production image: the installed wheel carries the SQL templates.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY packages/verifier packages/verifier
COPY service service
COPY sql sql
COPY schemas schemas
# Two wheels: oneauth-verifier (which also carries the version both read) and the server.
RUN pip wheel --no-deps --wheel-dir /wheels ./packages/verifier .

FROM python:3.11-slim
RUN useradd --system --uid 10001 oneauth
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER oneauth
ENV ONEAUTH_ENV=production ONEAUTH_HOST=0.0.0.0 ONEAUTH_PORT=8000
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
# Run `oneauth migrate` as a release step before starting new replicas.
CMD ["oneauth", "serve", "--workers", "2"]
