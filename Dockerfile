# company-activity: the pipeline as a container image (see README "Production on Azure").
#
#   docker build -t company-activity .
#   docker run --rm company-activity run             # one run (Container Apps job, Kubernetes CronJob)
#   docker run -d  company-activity                  # the scheduler (default command), with a HEALTHCHECK
#
# Every third-party package comes from requirements/lock.txt, hash-checked (make lock refreshes it);
# the package itself is built as a wheel and installed without dependencies.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/company-activity
COPY requirements/lock.txt requirements/lock.txt
RUN /opt/company-activity/bin/pip install --require-hashes --no-deps -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/company-activity/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/company-activity/bin/pip install --no-deps --no-index /wheels/*.whl \
    && /opt/company-activity/bin/pip check

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="company-activity" \
      org.opencontainers.image.description="CRM snapshots + product-usage API -> analytics.company_daily_activity" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/company-activity/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMPANY_ACTIVITY_LOG_FORMAT=json \
    COMPANY_ACTIVITY_WAREHOUSE=/data/warehouse.duckdb \
    COMPANY_ACTIVITY_LAKE=/data/lake
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data
COPY --from=build /opt/company-activity /opt/company-activity
USER 10001:10001
WORKDIR /home/app
VOLUME ["/data"]
HEALTHCHECK --interval=60s --timeout=20s --start-period=30s --retries=3 CMD ["company-activity", "health"]
ENTRYPOINT ["company-activity"]
CMD ["schedule"]
