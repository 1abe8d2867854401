# syntax=docker/dockerfile:1
# One image for the operator and the reference services; the first argument picks which:
#   docker run IMAGE operator run        (the operator)
#   docker run IMAGE gateway|users|...   (a reference service)

# --- build: wheels for the project and all its dependencies -----------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip wheel
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY services ./services
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- runtime: slim, non-root, read-only friendly ------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 keelson \
 && useradd --system --uid 10001 --gid keelson --home-dir /nonexistent --shell /usr/sbin/nologin keelson
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels keelson && rm -rf /wheels
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["keelson"]
CMD ["operator", "run"]
