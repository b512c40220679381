# One image for every process of the service: `rpm api` (the default command), `rpm ingest` and
# the one-shot `rpm migrate`. compose.yaml runs all three; docs/operations.md explains them.
# tests/packaging/test_clean_install.py repeats these steps outside Docker; keep the two in step.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: the project's wheel, and a venv with exactly the locked runtime dependencies ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The lock alone first, so that a change to the code does not install the dependencies again.
COPY requirements/runtime.lock requirements/runtime.lock
# --require-hashes also refuses a dependency the lock does not pin: the lock is the whole tree.
# The venv has no pip of its own: the base image's pip installs into it, and stays behind here.
RUN python -m venv --without-pip /opt/rpm \
 && pip --python /opt/rpm/bin/python install --require-hashes -r requirements/runtime.lock
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip --python /opt/rpm/bin/python install --no-deps /wheels/rpm_backend-*.whl \
 && pip --python /opt/rpm/bin/python check

# ---- the image: the venv and the migration scripts, no compilers, not root ----
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/rpm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RPM_ENVIRONMENT=production
RUN groupadd --system --gid 10001 rpm \
 && useradd --system --uid 10001 --gid rpm --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin rpm
COPY --from=builder /opt/rpm /opt/rpm
# `rpm migrate`, and the schema check `rpm api` and `rpm ingest` make at start, find the Alembic
# scripts in ./alembic of the working directory (rpm.migrations.alembic_dir): they live in the
# WORKDIR, owned by root and read-only to rpm.
WORKDIR /app
COPY alembic ./alembic
# Numeric, so that an orchestrator can verify the image does not run as root.
USER 10001:10001
EXPOSE 8000 9464
# The API's liveness. The ingest workers answer on their metrics port instead: compose.yaml gives
# them their own healthcheck (or set HEALTHCHECK_URL=http://127.0.0.1:9464/readyz).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'), timeout=4)"]
CMD ["rpm", "api", "--host", "0.0.0.0", "--port", "8000"]
