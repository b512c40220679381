# One image for both processes: `rpm api` and `rpm ingest` (and `rpm migrate` as a job).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RPM_ENVIRONMENT=production
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
COPY api ./api
COPY ingest ./ingest
COPY alembic ./alembic
RUN pip install . && useradd --system --uid 10001 rpm
USER rpm
EXPOSE 8000 9464
CMD ["rpm", "api", "--host", "0.0.0.0", "--port", "8000"]
