# One image for the three services: `ledger serve pricing|projector|api`.
FROM python:3.11-slim
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
