FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY ordersync ordersync
COPY producers producers
COPY processors processors
COPY schemas schemas
COPY sinks sinks
COPY stores.example.toml ./stores.example.toml
RUN pip install --no-cache-dir .
RUN useradd --system --create-home ordersync
USER ordersync
ENTRYPOINT ["ordersync"]
CMD ["--help"]
