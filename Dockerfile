# syntax=docker/dockerfile:1
# One image for the operator and the reference services; the first argument picks which:
#   docker run IMAGE operator run        (the operator)
#   docker run IMAGE gateway|users|...   (a reference service)
# Only the runtime's dependencies go in: not the test extras, not the local stack
# (operator/keelson/devstack, development tooling: see .dockerignore and docs/image.md).

# The base, overridable: `scripts/image` builds on a stand-in made from Debian's packages, since
# no registry is reachable there (docs/image.md).
ARG PYTHON_IMAGE=python:3.11-slim

# --- requirements: the runtime dependencies, read from pyproject.toml ---------------------------
# A stage of its own so that the slow install below is reused as long as the list is unchanged,
# whatever else changes in pyproject.toml (markers, linters' settings).
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /src/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /requirements.txt

# --- build: a ready virtualenv in /opt/keelson -------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# strip(1): some wheels ship their extensions with debug symbols (uvloop's is 13 MB, 2 MB stripped).
RUN apt-get update && apt-get install --yes --no-install-recommends binutils && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/keelson
WORKDIR /src
# The dependencies first: this slow layer is reused until they change. In the same step, so
# that no layer keeps them: kubernetes/aio goes (68 MB, an asyncio client the operator never
# imports: kopf watches, keelson.kube writes with httpx), and so does the bytecode of
# kubernetes.client's generated API and model classes (24 MB; the operator only loads its
# configuration, and `import kubernetes.config` takes 0.5 s with or without it); extension modules
# are stripped (not the vendored libraries in *.libs, which auditwheel patched). docs/image.md.
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN /opt/keelson/bin/pip install --requirement /tmp/requirements.txt \
 && rm -rf /opt/keelson/lib/python3*/site-packages/kubernetes/aio \
 && find /opt/keelson/lib/python3*/site-packages/kubernetes/client/api /opt/keelson/lib/python3*/site-packages/kubernetes/client/models \
      -name __pycache__ -prune -exec rm -rf {} + \
 && find /opt/keelson -name '*.so' -not -path '*.libs/*' -exec strip --strip-unneeded {} +
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY services ./services
# Then the project itself, and away with the installers: the image never installs anything.
RUN /opt/keelson/bin/pip install --no-deps . \
 && /opt/keelson/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: slim, non-root, read-only friendly ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/keelson/bin:$PATH
RUN groupadd --system --gid 10001 keelson \
 && useradd --system --uid 10001 --gid keelson --home-dir /nonexistent --shell /usr/sbin/nologin keelson
COPY --from=build /opt/keelson /opt/keelson
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["keelson"]
CMD ["operator", "run"]
