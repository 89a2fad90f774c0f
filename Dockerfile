# AI safety partnership monitor: one small, non-root service container.
# Build: docker build -t ai-safety-monitor .
# Run:   docker run -v monitor-state:/app/state --env-file slack.env ai-safety-monitor

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MONITOR_RULES_DIR=/app/rules \
    MONITOR_STATE=/app/state/monitor.db \
    MONITOR_LOG_FORMAT=json
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home monitor \
    && mkdir -p /app/state \
    && chown monitor:monitor /app/state
WORKDIR /app
# The shipped rules are the default; bind-mount your own over /app/rules.
COPY rules ./rules
USER 10001:10001
VOLUME ["/app/state"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["monitor", "healthcheck"]
# The monitor handles SIGTERM itself (it is PID 1 here): in-flight polls finish
# or are abandoned safely and the database is closed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["monitor"]
CMD ["run"]
