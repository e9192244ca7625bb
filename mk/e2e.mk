# The end-to-end tier (included by the top Makefile): a single-node cluster on this machine.
# See docs/testing.md#the-single-node-cluster.
#
# hack/install-node-deps.sh installs the Debian packages (containerd, runc, CNI plugins,
# buildah, ...) when one is missing; hack/build-images.sh builds the images (cached outside the
# repository, keyed by their sources). The tier needs root and Linux: elsewhere `make test`
# stops with one line that says so, and `make test-without-e2e` runs every other tier.

BUILD_IMAGES := hack/build-images.sh

ifndef MLPIPELINE_IMAGES_DIR
MLPIPELINE_IMAGES_DIR := $(shell MLPIPELINE_BIN_DIR=$(MLPIPELINE_BIN_DIR) $(BUILD_IMAGES) --print-dir 2>/dev/null | sed 's/^export MLPIPELINE_IMAGES_DIR=//')
endif
export MLPIPELINE_IMAGES_DIR

TEST_ENV += MLPIPELINE_IMAGES_DIR=$(MLPIPELINE_IMAGES_DIR)

.PHONY: e2e-requirements node-deps images e2e-cluster e2e test-without-e2e

e2e-requirements: venv ## fail in one line unless the end-to-end tier can run here (root, Linux)
	@$(PY) -c 'import sys; from tests.e2e.cluster import requirements_problem as p; \
	  r = p(packages=False); r and sys.exit(f"make test: {r}; `make test-without-e2e` runs every other tier")'

node-deps: ## install the Debian packages of the single-node cluster and the image builds (root)
	@hack/install-node-deps.sh

images: binaries node-deps ## build the cluster's images (pause, argoexec, the project's, the example's)
	@MLPIPELINE_BIN_DIR=$(MLPIPELINE_BIN_DIR) $(BUILD_IMAGES) >/dev/null

e2e-cluster: venv binaries images ## run the single-node cluster in the foreground; Ctrl-C stops it
	$(PY) -m tests.e2e $(E2E_CLUSTER_ARGS)

e2e: venv binaries images ## the end-to-end tier only
	$(BIN)/pytest -q -m e2e tests/e2e

# Before the end-to-end prerequisites join TEST_PREREQUISITES (below).
test-without-e2e: venv lint typecheck $(TEST_PREREQUISITES) ## every check but the end-to-end tier
	$(TEST_ENV) $(BIN)/pytest -q -m "not e2e"
TEST_PREREQUISITES += node-deps images

RECORDED_RUNS := tests/unit/data/argo-runs

.PHONY: record-runs
record-runs: venv binaries images ## re-record the unit tier's real Argo statuses from e2e runs
	mkdir -p $(RECORDED_RUNS)
	MLPIPELINE_RECORD_RUNS=$(CURDIR)/$(RECORDED_RUNS) $(BIN)/pytest -q -m e2e \
		tests/e2e/test_example.py tests/e2e/test_failures.py tests/e2e/test_fan_out.py

.PHONY: benchmark-e2e
benchmark-e2e: venv binaries images ## the example on the cluster vs locally, operator CPU, status lag
	$(PY) -m benchmarks.e2e_bench

.PHONY: benchmark-churn
benchmark-churn: venv binaries images ## 12 runs at once on the cluster: Argo's churn, status lag, operator CPU, memory, requests
	$(PY) -m benchmarks.churn
