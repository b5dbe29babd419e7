# One image for the three services: `ledger serve pricing|projector|api`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN pip install --no-cache-dir .
ENTRYPOINT ["ledger"]
