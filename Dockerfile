# syntax=docker/dockerfile:1
# authprofiles installed as `make serve` installs it: the package and what serving needs,
# without the dev extra. Its data (the SQLite database and the master key file, unless
# AUTHPROFILES_DATABASE_URL and AUTHPROFILES_MASTER_KEY say otherwise) lives in /data.
#
#   docker build -t authprofiles .
#   docker run -p 127.0.0.1:8000:8000 -v authprofiles-data:/data authprofiles
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# A virtual environment of its own; pip's cache stays out of the image.
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv /opt/authprofiles && /opt/authprofiles/bin/pip install .

# The server runs unprivileged, owning nothing but its data directory.
RUN useradd --system --uid 10001 --no-create-home --home-dir /data --shell /usr/sbin/nologin authprofiles \
    && mkdir -p /data && chown authprofiles:authprofiles /data

ENV PATH=/opt/authprofiles/bin:$PATH \
    AUTHPROFILES_DATABASE_URL=sqlite:////data/authprofiles.db \
    AUTHPROFILES_KEY_FILE=/data/authprofiles.key
USER authprofiles
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('AUTHPROFILES_PORT', '8000'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
CMD ["authprofiles", "serve", "--host", "0.0.0.0"]
