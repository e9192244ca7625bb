# syntax=docker/dockerfile:1
#
# The mlpipeline-operator image: `mlpipeline operator` by default, and `mlpipeline promote` in
# the promotion step of every workflow (the compiler sets `command: [mlpipeline, promote]`).
#
#   docker build -t ghcr.io/mlops-gitops/mlpipeline-operator:0.1.0 .
#
# The runtime holds the package with its `operator` and `promote` extras only (kopf,
# kubernetes-asyncio, mlflow-skinny), in a virtual environment without pip. It runs as the
# numeric user 65532 and writes nowhere but /tmp, so that it works with
# `readOnlyRootFilesystem: true` and an emptyDir mounted on /tmp (as the Helm chart does).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Build the wheel, then install it with the runtime extras into a venv that has no pip: the
# venv is all that the final stage takes from this one. Byte code is compiled here, since the
# root filesystem is read-only at run time.
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/mlpipeline \
    && wheel="$(echo /wheels/mlpipeline_operator-*.whl)" \
    && python -m pip --python /opt/mlpipeline/bin/python install --compile \
        "mlpipeline-operator[operator,promote] @ file://${wheel}" \
    && /opt/mlpipeline/bin/mlpipeline --version

FROM ${PYTHON_IMAGE}
ARG UID=65532
LABEL org.opencontainers.image.title="mlpipeline-operator" \
      org.opencontainers.image.description="Turns MLPipeline resources into Argo Workflows with gated model promotion in MLflow" \
      org.opencontainers.image.source="https://github.com/mlops-gitops/mlpipeline-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# A passwd entry for the numeric user (some libraries look the user up); no home directory.
RUN groupadd --gid "${UID}" mlpipeline \
    && useradd --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin mlpipeline
COPY --from=build /opt/mlpipeline /opt/mlpipeline
ENV PATH="/opt/mlpipeline/bin:${PATH}" \
    HOME=/tmp \
    TMPDIR=/tmp \
    USER=mlpipeline \
    LOGNAME=mlpipeline \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER ${UID}:${UID}
# The operator's health endpoint (MLPIPELINE_LIVENESS, http://0.0.0.0:8080/healthz).
EXPOSE 8080
ENTRYPOINT ["mlpipeline"]
CMD ["operator"]
