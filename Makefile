# mlpipeline-operator. `make test` sets everything up on a clean machine and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv lint typecheck unit local test crd golden docs generate benchmark benchmark-operator benchmark-kill-loop benchmark-failover benchmark-scale benchmark-cli demo

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP) ## create .venv with the package and its development tools

PYTHON_SOURCES := operator tests benchmarks examples hack

lint: venv ## ruff
	$(BIN)/ruff check $(PYTHON_SOURCES)
	$(BIN)/ruff format --check $(PYTHON_SOURCES)

typecheck: venv ## mypy --strict
	$(BIN)/mypy operator tests benchmarks hack
	$(BIN)/mypy examples/fraud-detection/fraud_detection

crd: venv ## regenerate crds/ from the API models
	$(BIN)/mlpipeline crd > crds/mlops.gitops.dev_mlpipelines.yaml
	$(BIN)/mlpipeline crd --peering > crds/peerings.kopf.dev.yaml
	cp crds/peerings.kopf.dev.yaml charts/mlpipeline-operator/crds/
	cp crds/mlops.gitops.dev_mlpipelines.yaml charts/mlpipeline-operator/files/crds/

golden: venv ## regenerate tests/golden/ from manifests/samples/ and examples/*/pipeline.yaml
	$(PY) -m hack.golden

docs: venv ## regenerate docs/api.md from the API models
	$(PY) -c 'from mlpipeline_operator.api.reference import render_reference as r; print(r(), end="")' > docs/api.md

generate: crd golden docs manifests argo-reference ## regenerate every generated file

unit: venv ## fast tests only (no control plane, no MLflow server, no step processes)
	$(BIN)/pytest -q -m "not integration and not mlflow and not e2e and not local"

local: venv ## the local runner with real step processes, the fraud-detection example included
	$(BIN)/pytest -q -m local tests/local

# The example of examples/fraud-detection, run locally twice against one fresh MLflow store.
DEMO := .mlpipeline/demo
DEMO_RUN := PYTHONPATH=$(CURDIR)/examples/fraud-detection $(BIN)/mlpipeline run \
	examples/fraud-detection/pipeline.yaml --mlflow-uri sqlite:///$(CURDIR)/$(DEMO)/mlflow.db

demo: venv ## run the example pipeline locally: a champion, then a worse model that mustBeat rejects
	rm -rf $(DEMO)
	$(DEMO_RUN) --run-dir $(DEMO)/1-champion
	@echo; echo "=== Again with a worse model (-p n_estimators=1): it must not beat the champion ==="; echo
	$(DEMO_RUN) --run-dir $(DEMO)/2-challenger -p n_estimators=1

benchmark: venv ## compile benchmark (prints medians)
	$(PY) -m benchmarks.compile_bench

benchmark-operator: venv binaries ## operator benchmark on the real control plane
	$(PY) -m benchmarks.operator_bench

benchmark-kill-loop: venv binaries ## the operator SIGKILLed 50 times during a burst of 200 pipelines
	$(PY) -m benchmarks.kill_loop

benchmark-failover: venv binaries ## two replicas: time until the follower acts after kill -9 of the leader
	$(PY) -m benchmarks.failover

# REF: another checkout to compare with (its operator runs with its `operator/` first on PYTHONPATH).
benchmark-scale: venv binaries ## the operator with 1,000 pipelines and 5,000 finished runs; REF=DIR side by side
	$(PY) -m benchmarks.scale $(if $(REF),--ref $(REF))

# REF: another checkout to compare with, e.g. `git worktree add --detach /tmp/main-ref main`.
benchmark-cli: venv ## the command's speed (validate, render, promote), side by side with REF=DIR
	$(PY) -m benchmarks.cli_speed $(REF)

-include mk/*.mk

test: e2e-requirements venv lint typecheck $(TEST_PREREQUISITES) ## the whole suite: lint, types, every test tier
	$(TEST_ENV) $(BIN)/pytest -q
