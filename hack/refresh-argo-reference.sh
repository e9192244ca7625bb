#!/usr/bin/env bash
# Copies Argo Workflows' reference data into third_party/argo-workflows/ from the Go module of
# the version that tests/controlplane/go/argo-validate and tests/controlplane/go/argo build
# (their go.mod files must agree), so that the tests check renders against the Argo they run:
#
#   api/jsonschema/schema.json                       Argo's published JSON schema
#   manifests/base/crds/full/argoproj.io_{workflows,cronworkflows,workflowtemplates}.yaml
#                                                    the full CRDs (complete OpenAPI validation)
#   LICENSE, VERSION, README.md
#
# Usage:
#   hack/refresh-argo-reference.sh           rewrite third_party/argo-workflows/ (`make argo-reference`)
#   hack/refresh-argo-reference.sh --check   exit 1 unless it already equals the module's files
#
# Needs Go and the Go module proxy (or the module in the local module cache).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module=github.com/argoproj/argo-workflows/v4
go_modules=(tests/controlplane/go/argo-validate tests/controlplane/go/argo)
dest="$repo_root/third_party/argo-workflows"
files=(
  LICENSE
  api/jsonschema/schema.json
  manifests/base/crds/full/argoproj.io_workflows.yaml
  manifests/base/crds/full/argoproj.io_cronworkflows.yaml
  manifests/base/crds/full/argoproj.io_workflowtemplates.yaml
)

mode="${1:-refresh}"
case "$mode" in
  refresh|--check) ;;
  -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# The version each go.mod requires (read from the file: no build, no network).
version=""
for dir in "${go_modules[@]}"; do
  v="$(sed -n "s|^[[:space:]]*\(require[[:space:]]\+\)\{0,1\}$module[[:space:]]\+\(v[^[:space:]]*\).*|\2|p" \
    "$repo_root/$dir/go.mod")"
  if [[ -z "$v" ]]; then
    echo "refresh-argo-reference: $dir/go.mod does not require $module" >&2
    exit 1
  fi
  if [[ -n "$version" && "$v" != "$version" ]]; then
    echo "refresh-argo-reference: ${go_modules[0]}/go.mod requires $module $version but $dir/go.mod requires $v: use one version" >&2
    exit 1
  fi
  version="$v"
done

src="$(cd "$repo_root/${go_modules[0]}" && GOFLAGS=-mod=readonly go mod download -json "$module@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$src" || ! -d "$src" ]]; then
  echo "refresh-argo-reference: go mod download $module@$version gave no directory" >&2
  exit 1
fi

readme() {
  cat <<README
# Argo Workflows $version: reference data

Files taken unchanged from the Go module \`$module@$version\`, the version that
\`tests/controlplane/go/argo-validate\` and \`tests/controlplane/go/argo\` build (Apache-2.0, see
[LICENSE](LICENSE)). \`hack/refresh-argo-reference.sh\` (\`make argo-reference\`) copies them
from the module of the version in those go.mod files; do not edit them by hand.

- [\`api/jsonschema/schema.json\`](api/jsonschema/schema.json): Argo's published JSON schema. The
  contract tier (\`tests/contract/test_argo_schema.py\`) validates every golden render with the
  definitions \`io.argoproj.workflow.v1alpha1.Workflow\` and \`...CronWorkflow\`.
- [\`manifests/base/crds/full/\`](manifests/base/crds/full/): the full CRDs of Workflow,
  CronWorkflow and WorkflowTemplate (complete OpenAPI validation), which the test control plane
  installs with server-side apply (they are too large for client-side apply's annotation).

Known quirks of the schema: \`IntOrString\` and \`Quantity\` are declared as strings only, although
Argo and Kubernetes accept integers there (\`retryStrategy.limit: 3\`), and objects do not forbid
unknown fields; the contract tier widens the two definitions, and the integration tier catches
unknown fields with a real API server and \`fieldValidation=Strict\`.
README
}

if [[ "$mode" == --check ]]; then
  stale=0
  for f in "${files[@]}"; do
    cmp -s "$src/$f" "$dest/$f" || { echo "stale: third_party/argo-workflows/$f" >&2; stale=1; }
  done
  [[ "$(cat "$dest/VERSION" 2>/dev/null)" == "$version" ]] || { echo "stale: third_party/argo-workflows/VERSION" >&2; stale=1; }
  cmp -s <(readme) "$dest/README.md" || { echo "stale: third_party/argo-workflows/README.md" >&2; stale=1; }
  [[ "$stale" == 0 ]] || { echo "run hack/refresh-argo-reference.sh (make argo-reference)" >&2; exit 1; }
  echo "third_party/argo-workflows/ is $module $version"
  exit 0
fi

rm -rf "$dest"
for f in "${files[@]}"; do
  mkdir -p "$(dirname "$dest/$f")"
  cp "$src/$f" "$dest/$f"
  chmod 644 "$dest/$f"
done
echo "$version" > "$dest/VERSION"
readme > "$dest/README.md"
echo "third_party/argo-workflows/: $module $version"
