# syntax=docker/dockerfile:1
# phoneops: one image for every process (API, job workers, SQS consumer, migrations).
#   docker build -t phoneops .
#   docker run --env-file .env phoneops serve --host 0.0.0.0   (see docker-compose.yml and README "Deployment")
# No secret is baked in: every setting comes from the environment at run time (.env is excluded from the context).

# --- build: wheels of phoneops and its runtime dependencies (no dev or bench extras) ---------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# A C compiler and OpenSSL's headers build the native blind-index module (setup.py); the run stage needs only
# libcrypto, which the Python image already has.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md constraints.txt ./
COPY src ./src
# constraints.txt: the versions CI tested (`make lock`)
RUN pip wheel --wheel-dir /wheels -c constraints.txt .

# --- run -------------------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/var/lib/phoneops STORAGE_ROOT=/var/lib/phoneops/files

RUN groupadd --system --gid 10001 phoneops \
    && useradd --system --uid 10001 --gid phoneops --home-dir /var/lib/phoneops --no-create-home \
       --shell /usr/sbin/nologin phoneops \
    && mkdir -p /var/lib/phoneops/files \
    && chown -R phoneops:phoneops /var/lib/phoneops

RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels phoneops

COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/phoneops-healthcheck

USER phoneops
WORKDIR /var/lib/phoneops
EXPOSE 8800
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
    CMD ["phoneops-healthcheck", "api", "http://127.0.0.1:8800/health"]

ENTRYPOINT ["phoneops"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8800"]
