# One image for the four services: `ledger serve pricing|projector|api|webhooks`.
FROM python:3.11-slim
# The version comes from pyproject.toml: docker build --build-arg VERSION="$(make version)" .
ARG VERSION=unknown
LABEL org.opencontainers.image.title="credit-ledger" \
      org.opencontainers.image.version="$VERSION"
WORKDIR /app
# The pinned runtime dependencies first, so a code change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY schemas ./schemas
COPY services ./services
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --no-create-home --uid 10001 ledger
# The services need no privilege: they only talk to Kafka and PostgreSQL and bind port 8000.
USER ledger
ENTRYPOINT ["ledger"]
