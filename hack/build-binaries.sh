#!/usr/bin/env bash
# Builds the test control-plane binaries from the Go modules in
# tests/controlplane/go/ and caches them outside the repository:
#
#   kube-apiserver, kube-controller-manager,  (tests/controlplane/go/kube)
#   kubelet, kube-scheduler, kube-proxy, kubectl
#   etcd                                      (tests/controlplane/go/etcd)
#   helm                                      (tests/controlplane/go/helm)
#   argo-validate                             (tests/controlplane/go/argo-validate)
#   workflow-controller, argoexec             (tests/controlplane/go/argo)
#   versitygw                                 (tests/controlplane/go/versitygw)
#   pause                                     (tests/controlplane/go/pause)
#
# Layout of the cache (default root ~/.cache/mlpipeline-operator):
#
#   build/<group>-<group key>/...   one directory per module, keyed by its
#                                   go.mod, go.sum, *.go, this script and the Go version
#   bin/<key>/                      symlinks to every binary, key = hash of the group keys
#   bin/current -> <key>            the set built last
#
# A group whose directory exists is not rebuilt, so a second run does no work.
#
# Usage:
#   hack/build-binaries.sh               build what is missing, print the bin dir
#   hack/build-binaries.sh --print-dir   print the bin dir for the current sources, build nothing
#   hack/build-binaries.sh --check       exit 1 unless every binary is already built
#
# Environment:
#   MLPIPELINE_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-~/.cache}/mlpipeline-operator)
#   MLPIPELINE_GO_JOBS     go build -p (default 2)
#
# Tests find the binaries through MLPIPELINE_BIN_DIR (set by mk/controlplane.mk
# to the output of --print-dir), or else through bin/current.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
modules_dir="$repo_root/tests/controlplane/go"
script_path="$repo_root/hack/build-binaries.sh"
cache_root="${MLPIPELINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlpipeline-operator}"
jobs="${MLPIPELINE_GO_JOBS:-2}"

export CGO_ENABLED=0
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"

groups=(kube etcd helm argo-validate argo versitygw pause)

binaries_of() {
  case "$1" in
    kube) echo "kube-apiserver kube-controller-manager kubelet kube-scheduler kube-proxy kubectl" ;;
    etcd) echo "etcd" ;;
    helm) echo "helm" ;;
    argo-validate) echo "argo-validate" ;;
    argo) echo "workflow-controller argoexec argo-crds" ;;
    versitygw) echo "versitygw" ;;
    pause) echo "pause" ;;
    *) echo "unknown group $1" >&2; return 1 ;;
  esac
}

go_version() {
  if ! command -v go >/dev/null 2>&1; then
    echo "build-binaries: 'go' is not on PATH (Go 1.26 or newer is needed)" >&2
    return 1
  fi
  go env GOVERSION GOOS GOARCH | tr '\n' ' '
}

# group_key GROUP: a short hash of everything that decides the group's binaries.
group_key() {
  local dir="$modules_dir/$1"
  {
    echo "group $1"
    echo "go $goversion"
    sha256sum "$script_path" | cut -d' ' -f1
    (cd "$dir" && find . -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

goversion="$(go_version)"
declare -A keys
all_keys=""
for g in "${groups[@]}"; do
  keys[$g]="$(group_key "$g")"
  all_keys+="$g=${keys[$g]} "
done
set_key="$(echo "$all_keys" | sha256sum | cut -c1-16)"
bin_dir="$cache_root/bin/$set_key"

mode="${1:-build}"
case "$mode" in
  --print-dir) echo "$bin_dir"; exit 0 ;;
  --check|build) ;;
  -h|--help) sed -n '2,30p' "$script_path"; exit 0 ;;
  *) echo "usage: $0 [--print-dir|--check]" >&2; exit 2 ;;
esac

group_dir() { echo "$cache_root/build/$1-${keys[$1]}"; }

if [[ "$mode" == --check ]]; then
  missing=0
  for g in "${groups[@]}"; do
    for b in $(binaries_of "$g"); do
      [[ -x "$(group_dir "$g")/$b" ]] || { echo "missing: $b (group $g)" >&2; missing=1; }
    done
  done
  exit "$missing"
fi

# module_version DIR MODULE: the version of MODULE selected in DIR's go.mod.
module_version() {
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}
module_time() {
  (cd "$1" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2")
}

build_group() {
  local g="$1" out="$2" dir="$modules_dir/$1"
  local common=(-p "$jobs" -trimpath)
  case "$g" in
    kube)
      local v t major minor ld=""
      v="$(module_version "$dir" k8s.io/kubernetes)"
      t="$(module_time "$dir" k8s.io/kubernetes)"
      major="${v#v}"; major="${major%%.*}"
      minor="${v#v*.}"; minor="${minor%%.*}"
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${t:-1970-01-01T00:00:00Z}"
      done
      (cd "$dir" && go build "${common[@]}" -ldflags "-s -w$ld" -o "$out/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy \
        k8s.io/kubernetes/cmd/kubectl)
      ;;
    etcd)
      (cd "$dir" && go build "${common[@]}" -ldflags "-s -w" -o "$out/etcd" .)
      ;;
    helm)
      local v
      v="$(module_version "$dir" helm.sh/helm/v4)"
      (cd "$dir" && go build "${common[@]}" \
        -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$v -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
        -o "$out/helm" helm.sh/helm/v4/cmd/helm)
      ;;
    argo-validate)
      (cd "$dir" && go build "${common[@]}" -ldflags "-s -w" -o "$out/argo-validate" .)
      ;;
    argo)
      # Upstream's osspecific/signal_linux.go is a symlink to signal_darwin.go, and module zips
      # drop symlinks (argoexec then fails with "undefined: Setpgid"): build from a copy of the
      # module with the file restored, through a replace in a copy of go.mod.
      local v src mod
      v="$(module_version "$dir" github.com/argoproj/argo-workflows/v4)"
      src="$out/.src"
      mod="$(cd "$dir" && go mod download -json "github.com/argoproj/argo-workflows/v4@$v" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
      cp -r "$mod" "$src" && chmod -R u+w "$src"
      cp "$src/workflow/executor/osspecific/signal_darwin.go" "$src/workflow/executor/osspecific/signal_linux.go"
      cp "$dir/go.mod" "$out/.build.mod" && cp "$dir/go.sum" "$out/.build.sum"
      (cd "$dir" && go mod edit -modfile="$out/.build.mod" -replace "github.com/argoproj/argo-workflows/v4=$src" \
        && go build "${common[@]}" -modfile="$out/.build.mod" \
          -ldflags "-s -w -X github.com/argoproj/argo-workflows/v4.version=$v -X github.com/argoproj/argo-workflows/v4.gitTreeState=clean" \
          -o "$out/" github.com/argoproj/argo-workflows/v4/cmd/workflow-controller \
          github.com/argoproj/argo-workflows/v4/cmd/argoexec)
      # The CRDs of this very version, for the cluster that runs this controller.
      mkdir -p "$out/argo-crds" && cp "$src"/manifests/base/crds/full/argoproj.io_*.yaml "$out/argo-crds/"
      rm -rf "$src" "$out/.build.mod" "$out/.build.sum"
      ;;
    versitygw)
      (cd "$dir" && go build "${common[@]}" -ldflags "-s -w" -o "$out/versitygw" github.com/versity/versitygw/cmd/versitygw)
      ;;
    pause)
      (cd "$dir" && go build "${common[@]}" -ldflags "-s -w" -o "$out/pause" .)
      ;;
  esac
}

mkdir -p "$cache_root/build" "$cache_root/bin"
# One build at a time per cache (two make runs in parallel wait for each other).
exec 9>"$cache_root/.lock"
flock 9

total_start=$SECONDS
built=0
for g in "${groups[@]}"; do
  final="$(group_dir "$g")"
  if [[ -d "$final" ]]; then
    continue
  fi
  tmp="$final.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  echo "build-binaries: building $g ($(binaries_of "$g")) ..." >&2
  start=$SECONDS
  if ! build_group "$g" "$tmp"; then
    rm -rf "$tmp"
    echo "build-binaries: FAILED to build group $g in $modules_dir/$g" >&2
    exit 1
  fi
  for b in $(binaries_of "$g"); do
    [[ -x "$tmp/$b" ]] || { echo "build-binaries: $g did not produce $b" >&2; exit 1; }
  done
  mv "$tmp" "$final"
  built=$((built + 1))
  echo "build-binaries: built $g in $((SECONDS - start))s" >&2
done

# bin/<key>: one directory with every binary of this set (made once, then left
# alone: tests may be using it).
if [[ ! -f "$bin_dir/KEYS" ]]; then
  tmp_bin="$bin_dir.tmp.$$"
  rm -rf "$tmp_bin"
  mkdir -p "$tmp_bin"
  for g in "${groups[@]}"; do
    for b in $(binaries_of "$g"); do
      ln -s "$(group_dir "$g")/$b" "$tmp_bin/$b"
    done
  done
  printf '%s\n' $all_keys > "$tmp_bin/KEYS"
  rm -rf "$bin_dir"
  mv "$tmp_bin" "$bin_dir"
fi
ln -sfn "$set_key" "$cache_root/bin/current.tmp.$$"
mv -T "$cache_root/bin/current.tmp.$$" "$cache_root/bin/current"

if [[ $built -gt 0 ]]; then
  echo "build-binaries: built $built group(s) in $((SECONDS - total_start))s" >&2
else
  echo "build-binaries: all binaries up to date" >&2
fi
echo "build-binaries: binaries are in $bin_dir (also $cache_root/bin/current)" >&2
echo "export MLPIPELINE_BIN_DIR=$bin_dir"
