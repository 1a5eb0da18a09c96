# The image runs what `pip install` of the project's wheel installs (tests/test_packaging.py checks
# that wheel outside the checkout): build the wheel in one stage, install only it in the next.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# the shell's portion of the ordersync namespace, then one folder per component (pyproject.toml)
COPY ordersync ordersync
COPY producers producers
COPY processors processors
COPY runtime runtime
COPY schemas schemas
COPY segmentation segmentation
COPY sinks sinks
COPY web web
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
WORKDIR /app
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist
COPY stores.example.toml ./stores.example.toml
RUN useradd --system --create-home ordersync
USER ordersync
ENTRYPOINT ["ordersync"]
CMD ["--help"]
