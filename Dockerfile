# The earlyhelp engine and command line: one image for `serve`, `migrate` and the operators' commands.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY earlyhelp earlyhelp
COPY schemas schemas
COPY workflows workflows
COPY consumers consumers
COPY producers producers
COPY persistence persistence
COPY cli cli
COPY reports reports
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# No root at run time; the engine needs no writable files (PostgreSQL holds the state).
RUN useradd --create-home --uid 10001 earlyhelp
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER earlyhelp
WORKDIR /home/earlyhelp
ENV PYTHONUNBUFFERED=1 EARLYHELP_METRICS_PORT=9464
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["earlyhelp"]
CMD ["serve"]
