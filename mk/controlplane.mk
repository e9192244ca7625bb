# Test control plane (included by the top Makefile). See docs/testing.md.
#
# `make binaries` builds kube-apiserver, kube-controller-manager, etcd, helm and argo-validate
# from the Go modules in tests/controlplane/go/ into a cache outside the repository
# (~/.cache/mlpipeline-operator, or $MLPIPELINE_CACHE_DIR); a second run builds nothing.
#
# MLPIPELINE_BIN_DIR is the directory of the binaries for the current sources. It is computed
# once here (hashing go.mod/go.sum/*.go and the build script, no build) and exported to every
# recipe, so the pytest run of `make test` finds the binaries through it. Set it yourself to
# use binaries from elsewhere. KUBEBUILDER_ASSETS, when set, supplies kube-apiserver and etcd.
#
# `make argo-reference` copies Argo's JSON schema and full CRDs into third_party/argo-workflows/
# from the Go module of the Argo version that go/argo-validate and go/argo require.

BUILD_BINARIES := hack/build-binaries.sh

ifndef MLPIPELINE_BIN_DIR
MLPIPELINE_BIN_DIR := $(shell $(BUILD_BINARIES) --print-dir 2>/dev/null)
endif
export MLPIPELINE_BIN_DIR

TEST_PREREQUISITES += binaries
TEST_ENV += MLPIPELINE_BIN_DIR=$(MLPIPELINE_BIN_DIR)

.PHONY: binaries cluster argo-reference

binaries: ## build the control-plane binaries, helm and argo-validate (cached outside the repo)
	@$(BUILD_BINARIES)

argo-reference: ## copy Argo's schema and full CRDs into third_party/ from the version in go.mod
	@hack/refresh-argo-reference.sh

cluster: venv binaries ## run etcd + kube-apiserver with the CRDs in the foreground; Ctrl-C stops
	$(PY) -m tests.controlplane $(CLUSTER_ARGS)
