#!/usr/bin/env bash
# Builds the container images of the end-to-end test cluster, without a Docker engine and
# without an image registry, and caches them outside the repository:
#
#   base      Debian bookworm + python3 from Debian packages (mmdebstrap), imported with
#             buildah; stands in for python:3.11-slim. Only used to build the next two.
#   operator  the repository's Dockerfile (buildah bud, PYTHON_IMAGE=<base>): the operator
#             and the promotion step (PROMOTION_IMAGE)
#   example   examples/fraud-detection/Dockerfile: the steps of the example (STEP_IMAGE)
#   pause     the pod sandbox: /pause from the binaries of hack/build-binaries.sh
#   argoexec  Argo's executor: /usr/local/bin/argoexec from the same binaries, and a static
#             busybox as /bin/busybox and /bin/sh (for debugging)
#
# pause and argoexec are written by hack/oci_archive.py (no buildah). Every image is a tar
# archive that `ctr -n k8s.io images import FILE` imports with its name, tagged with the hash
# of its inputs (so a changed source is a new tag, and IfNotPresent never runs a stale image).
#
# Layout of the cache (default root ~/.cache/mlpipeline-operator):
#
#   image-build/<image>-<key>/<image>.tar   one directory per image, keyed by its inputs:
#                                   this script, its Dockerfile and the git-tracked files of
#                                   its build context, the base's key; for pause and argoexec
#                                   the binaries' sha256 and hack/oci_archive.py
#   images/<key>/                   hard links to operator.tar, example.tar, pause.tar,
#                                   argoexec.tar, and images.env (PAUSE_IMAGE=, ARGOEXEC_IMAGE=,
#                                   PROMOTION_IMAGE=, STEP_IMAGE=); key = hash of the image keys
#   images/current -> <key>         the set built last
#   buildah/{root,run}              buildah's storage (vfs); holds the base image only
#   logs/<image>-<key>.log          the output of mmdebstrap, buildah bud and the smoke tests
#   tmp/                            temporary files (TMPDIR of mmdebstrap and buildah)
#
# An image whose directory exists is not rebuilt, so a second run does no work. Each image
# is built into <dir>.tmp.<pid> and renamed into place when complete; the operator and the
# example are smoke-tested first (`mlpipeline --version`, `import sklearn, numpy, mlflow,
# fraud_detection`, as their user 65532).
#
# Usage:
#   hack/build-images.sh               build what is missing, print `export MLPIPELINE_IMAGES_DIR=...`
#   hack/build-images.sh --print-dir   print the images dir for the current sources, build nothing
#   hack/build-images.sh --check       exit 1 unless every image is already built
#
# Environment:
#   MLPIPELINE_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-~/.cache}/mlpipeline-operator)
#   MLPIPELINE_BIN_DIR     where pause and argoexec are (default: hack/build-binaries.sh --print-dir);
#                          they must exist, even for --print-dir, since their hashes are in the keys
#   MLPIPELINE_IMAGES_VERBOSE=1   show the builds' output on stderr instead of logs/ only
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST   when set, baked into the base image
#                          (and its key), for a machine that reaches PyPI through a mirror
#
# Needs (as root): mmdebstrap, buildah, busybox-static; pip inside the builds reaches PyPI
# with this machine's CA bundle and /etc/pip.conf, which the base image carries.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
script_path="$repo_root/hack/build-images.sh"
oci_archive="$repo_root/hack/oci_archive.py"
cache_root="${MLPIPELINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mlpipeline-operator}"
registry="localhost/mlpipeline"

images=(base operator example pause argoexec)
cluster_images=(operator example pause argoexec)

# The base: Debian packages; the host's CA bundle and pip configuration (pip in a build reaches
# PyPI only through them), and the PIP_* settings that say where PyPI is, when they are set.
suite=bookworm
base_packages=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd
host_ca=/etc/ssl/certs/ca-certificates.crt
host_pip_conf=/etc/pip.conf
pip_env_names=(PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST)
busybox=/bin/busybox
std_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The build context of each Dockerfile image: the Dockerfile, its ignore file and these paths
# (relative to the context), as far as git tracks them. Keep in step with the .dockerignore
# files: a file the Dockerfile needs and that is left out here makes the build fail.
context_dir_of() {
  case "$1" in
    operator) echo "." ;;
    example) echo "examples/fraud-detection" ;;
  esac
}
context_paths_of() {
  case "$1" in
    operator) echo "pyproject.toml README.md operator" ;;
    example) echo "fraud_detection" ;;
  esac
}

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }

mode="${1:-build}"
case "$mode" in
  --print-dir|--check|build) ;;
  -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$script_path" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--print-dir|--check]" >&2; exit 2 ;;
esac

if [[ -z "${MLPIPELINE_BIN_DIR:-}" ]]; then
  MLPIPELINE_BIN_DIR="$("$repo_root/hack/build-binaries.sh" --print-dir)" \
    || die "cannot compute the binaries' directory (hack/build-binaries.sh --print-dir)"
fi
bin_dir="$MLPIPELINE_BIN_DIR"
for b in pause argoexec; do
  [[ -f "$bin_dir/$b" ]] || die "$bin_dir/$b is missing: run hack/build-binaries.sh first (or set MLPIPELINE_BIN_DIR)"
done
[[ -x "$busybox" ]] || die "$busybox is missing (Debian package busybox-static)"

sha() { sha256sum "$@" | cut -d' ' -f1; }

# context_files IMAGE: the git-tracked files of the image's context that exist in the work
# tree (their working-tree content goes into the image), NUL-separated, relative to the context.
context_files() {
  local paths
  read -r -a paths <<<"$(context_paths_of "$1")"
  (cd "$repo_root/$(context_dir_of "$1")" && git ls-files -z --cached -- "${paths[@]}" \
    | while IFS= read -r -d '' f; do
        if [[ -f "$f" ]]; then printf '%s\0' "$f"; fi
      done)
}

# image_key IMAGE: a short hash of everything that decides the image.
image_key() {
  {
    echo "image $1"
    sha "$script_path"
    case "$1" in
      base)
        echo "suite $suite packages $base_packages arch $(dpkg --print-architecture)"
        sha "$host_ca"
        if [[ -f "$host_pip_conf" ]]; then sha "$host_pip_conf"; fi
        for v in "${pip_env_names[@]}"; do
          if [[ -n "${!v:-}" ]]; then echo "$v=${!v}"; fi
        done
        ;;
      operator|example)
        local dir
        dir="$repo_root/$(context_dir_of "$1")"
        echo "base ${keys[base]}"
        sha "$dir/Dockerfile"
        if [[ -f "$dir/.dockerignore" ]]; then sha "$dir/.dockerignore"; fi
        # Names, modes and contents of the context's files.
        context_files "$1" | LC_ALL=C sort -z | (cd "$dir" && xargs -0 -r stat -c '%a %n')
        context_files "$1" | LC_ALL=C sort -z | (cd "$dir" && xargs -0 -r sha256sum)
        ;;
      pause)
        sha "$oci_archive" "$bin_dir/pause"
        ;;
      argoexec)
        sha "$oci_archive" "$bin_dir/argoexec" "$busybox" "$host_ca"
        ;;
    esac
  } | sha256sum | cut -c1-16
}

declare -A keys
all_keys=""
for i in "${images[@]}"; do
  keys[$i]="$(image_key "$i")"
  all_keys+="$i=${keys[$i]} "
done
set_key="$(echo "$all_keys" | sha256sum | cut -c1-16)"
images_dir="$cache_root/images/$set_key"

ref_of() { echo "$registry/$1:${keys[$1]}"; }
image_dir() { echo "$cache_root/image-build/$1-${keys[$1]}"; }

if [[ "$mode" == --print-dir ]]; then
  echo "$images_dir"
  exit 0
fi

if [[ "$mode" == --check ]]; then
  missing=0
  for i in "${cluster_images[@]}"; do
    [[ -f "$(image_dir "$i")/$i.tar" ]] || { echo "missing: $i ($(ref_of "$i"))" >&2; missing=1; }
  done
  [[ -f "$images_dir/images.env" ]] || { echo "missing: $images_dir/images.env" >&2; missing=1; }
  exit "$missing"
fi

[[ $EUID -eq 0 ]] || die "must run as root (mmdebstrap and buildah --isolation chroot)"
for tool in mmdebstrap buildah python3 git flock; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH"
done

mkdir -p "$cache_root/image-build" "$cache_root/images" "$cache_root/tmp"
# One build at a time per cache (not the lock of build-binaries.sh: Go builds do not wait).
exec 9>"$cache_root/.images.lock"
flock 9

# buildah's storage lives in the cache, never in /var/lib/containers; its big temporary files
# (and mmdebstrap's chroot) in the cache's tmp/.
export TMPDIR="$cache_root/tmp"
bah() {
  buildah --root "$cache_root/buildah/root" --runroot "$cache_root/buildah/run" \
    --storage-driver vfs "$@"
}

# Working containers and temporary directories of this run, removed however it ends.
containers=()
tmp_dirs=()
cleanup() {
  local c d
  for c in "${containers[@]}"; do bah rm "$c" >/dev/null 2>&1 || true; done
  for d in "${tmp_dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
new_tmp() {  # new_tmp FINAL: tmp=FINAL.tmp.<pid>, empty, renamed into place when complete
  tmp="$1.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  tmp_dirs+=("$tmp")
}

# logged IMAGE COMMAND...: runs COMMAND with its output in logs/IMAGE-<key>.log (the last
# lines are shown when it fails; MLPIPELINE_IMAGES_VERBOSE=1 shows everything on stderr).
log_of() { echo "$cache_root/logs/$1-${keys[$1]}.log"; }
logged() {
  local log_file rc=0
  log_file="$(log_of "$1")"
  shift
  if [[ -n "${MLPIPELINE_IMAGES_VERBOSE:-}" ]]; then
    "$@" >&2
    return
  fi
  mkdir -p "$cache_root/logs"
  "$@" >>"$log_file" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    tail -n 40 "$log_file" >&2
    local what="${*:1:2}"
    log "FAILED ($rc): ${what/#bah/buildah} ... (whole output: $log_file)"
  fi
  return "$rc"
}

# Left over by an interrupted run (we hold the lock: nothing else is building in this cache):
# temporary directories, and working containers in our storage.
rm -rf "$cache_root"/image-build/*.tmp.* "$cache_root"/images/*.tmp.* "$cache_root"/tmp/*
if [[ -d "$cache_root/buildah/root" ]]; then
  bah rm --all >/dev/null 2>&1 || true
fi

build_base() {  # build_base OUT: the base image in buildah's storage, and OUT/base.tar
  local out="$1" ref ctr rootfs env_args=() v
  ref="$(ref_of base)"
  rootfs="$out/rootfs.tar"
  # Documentation, man pages and translations left out (as in Debian's slim images, and for
  # what apt installs later); mmdebstrap itself empties apt's lists and caches.
  # The merged-usr hook makes /bin etc. symlinks itself and installs usr-is-merged (otherwise
  # apt picks usrmerge, which brings perl: 50 MB).
  logged base mmdebstrap --variant=apt --include="$base_packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "$suite" "$rootfs" </dev/null
  ctr="$(bah from --quiet scratch)"
  containers+=("$ctr")
  bah add --quiet "$ctr" "$rootfs" /
  rm -f "$rootfs"
  # The host's CA bundle replaces Debian's (it is Debian's plus what this machine trusts),
  # and its pip configuration goes along, so that pip in a build reaches PyPI as it does here.
  bah copy --quiet --chmod 0644 "$ctr" "$host_ca" /etc/ssl/certs/ca-certificates.crt
  if [[ -f "$host_pip_conf" ]]; then
    bah copy --quiet --chmod 0644 "$ctr" "$host_pip_conf" /etc/pip.conf
  fi
  for v in "${pip_env_names[@]}"; do
    if [[ -n "${!v:-}" ]]; then env_args+=(--env "$v=${!v}"); fi
  done
  bah config --env "PATH=$std_path" --env LANG=C.UTF-8 \
    --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt "${env_args[@]}" \
    --cmd '["python3"]' --label "org.opencontainers.image.title=mlpipeline-base" \
    --label "org.opencontainers.image.description=Debian $suite with $base_packages (mmdebstrap)" \
    "$ctr"
  bah commit --quiet --rm "$ctr" "$ref" >/dev/null
  containers=("${containers[@]/$ctr}")
  bah push --quiet "$ref" "docker-archive:$out/base.tar:$ref"
}

# ensure_base: the base's archive in the cache, and the base image in buildah's storage (from
# that archive when the storage lacks it).
ensure_base() {
  local ref dir id start tmp
  ref="$(ref_of base)"
  dir="$(image_dir base)"
  if [[ ! -d "$dir" ]]; then
    log "building base ($ref): mmdebstrap $suite + $base_packages ..."
    start=$SECONDS
    mkdir -p "$cache_root/logs"
    : >"$(log_of base)"
    new_tmp "$dir"
    build_base "$tmp"
    mv "$tmp" "$dir"
    log "built base in $((SECONDS - start))s ($(du -h "$dir/base.tar" | cut -f1))"
    built=$((built + 1))
  elif ! bah inspect --type image "$ref" >/dev/null 2>&1; then
    log "loading base ($ref) into buildah's storage from $dir/base.tar ..."
    id="$(bah pull --quiet "docker-archive:$dir/base.tar")"
    bah tag "$id" "$ref"
  fi
}

# run_in IMAGE SCRIPT: runs `sh -c SCRIPT` in a throwaway container of IMAGE, as its user.
run_in() {
  local ctr rc=0
  ctr="$(bah from --quiet --pull=never "$1")"
  containers+=("$ctr")
  bah run --isolation chroot "$ctr" -- sh -c "$2" || rc=$?
  bah rm "$ctr" >/dev/null
  containers=("${containers[@]/$ctr}")
  return "$rc"
}

build_dockerfile_image() {  # IMAGE OUT
  local name="$1" out="$2" ref dir ctx untracked tmp
  ref="$(ref_of "$name")"
  dir="$repo_root/$(context_dir_of "$name")"
  # The context: a copy of the git-tracked files (so the image is exactly what the key says).
  new_tmp "$TMPDIR/context-$name"
  ctx="$tmp"
  cp "$dir/Dockerfile" "$ctx/Dockerfile"
  if [[ -f "$dir/.dockerignore" ]]; then cp "$dir/.dockerignore" "$ctx/.dockerignore"; fi
  (cd "$dir" && context_files "$name" | tar --null -T - -cf -) | tar -C "$ctx" -xf -
  local paths
  read -r -a paths <<<"$(context_paths_of "$name")"
  untracked="$(cd "$dir" && git ls-files --others --exclude-standard -- "${paths[@]}")"
  if [[ -n "$untracked" ]]; then
    log "note: untracked files are not in the $name image: $(echo "$untracked" | tr '\n' ' ')"
  fi
  logged "$name" bah bud --isolation chroot --pull=never --force-rm --layers=false \
    --build-arg "PYTHON_IMAGE=$(ref_of base)" -f "$ctx/Dockerfile" -t "$ref" "$ctx"
  # A smoke test, as the image's user (the scripts run in the container: single quotes).
  # shellcheck disable=SC2016
  case "$name" in
    operator)
      logged "$name" run_in "$ref" 'set -e; id; test "$(id -u)" = 65532; mlpipeline --version'
      ;;
    example)
      logged "$name" run_in "$ref" 'set -e; id; test "$(id -u)" = 65532; cd /
        python -c "import sklearn, numpy, mlflow, fraud_detection"
        python -m fraud_detection.ingest --rows 200 --out /data/smoke/transactions.csv
        rm -r /data/smoke'
      ;;
  esac
  bah push --quiet "$ref" "docker-archive:$out/$name.tar:$ref"
  # The archive is the product; buildah's storage keeps the base only.
  bah rmi "$ref" >/dev/null
}

build_archive_image() {  # IMAGE OUT
  local name="$1" out="$2" ref
  ref="$(ref_of "$name")"
  case "$name" in
    pause)
      logged "$name" python3 "$oci_archive" --name "$ref" --out "$out/pause.tar" \
        --add /pause "$bin_dir/pause" \
        --entrypoint '["/pause"]' --user 65535:65535
      ;;
    argoexec)
      logged "$name" python3 "$oci_archive" --name "$ref" --out "$out/argoexec.tar" \
        --add /usr/local/bin/argoexec "$bin_dir/argoexec" \
        --add /bin/busybox "$busybox" --symlink /bin/sh busybox \
        --add /etc/ssl/certs/ca-certificates.crt "$host_ca" \
        --dir /tmp 1777 \
        --env "PATH=$std_path" --entrypoint '["argoexec"]'
      ;;
  esac
}

total_start=$SECONDS
built=0
for i in "${cluster_images[@]}"; do
  final="$(image_dir "$i")"
  if [[ -d "$final" ]]; then
    continue
  fi
  start=$SECONDS
  case "$i" in
    operator|example)
      ensure_base
      log "building $i ($(ref_of "$i")), log in $(log_of "$i") ..."
      mkdir -p "$cache_root/logs"
      : >"$(log_of "$i")"
      new_tmp "$final"
      build_dockerfile_image "$i" "$tmp"
      ;;
    pause|argoexec)
      log "building $i ($(ref_of "$i")) with hack/oci_archive.py ..."
      mkdir -p "$cache_root/logs"
      : >"$(log_of "$i")"
      new_tmp "$final"
      build_archive_image "$i" "$tmp"
      ;;
  esac
  mv "$tmp" "$final"
  built=$((built + 1))
  log "built $i in $((SECONDS - start))s ($(du -h "$final/$i.tar" | cut -f1))"
done

# buildah's storage: the current base only (older bases come back from their archives).
if [[ $built -gt 0 && -d "$cache_root/buildah/root" ]]; then
  base_id="$(bah inspect --type image --format '{{.FromImageID}}' "$(ref_of base)" 2>/dev/null || true)"
  for id in $(bah images --all --quiet --no-trunc 2>/dev/null); do
    [[ "${id#sha256:}" == "${base_id#sha256:}" ]] || bah rmi --force "$id" >/dev/null 2>&1 || true
  done
fi

# images/<key>: every image of this set and images.env (made once, then left alone: a test
# cluster may be importing from it).
if [[ ! -f "$images_dir/images.env" ]]; then
  new_tmp "$images_dir"
  for i in "${cluster_images[@]}"; do
    ln "$(image_dir "$i")/$i.tar" "$tmp/$i.tar" 2>/dev/null || cp "$(image_dir "$i")/$i.tar" "$tmp/$i.tar"
  done
  {
    echo "PAUSE_IMAGE=$(ref_of pause)"
    echo "ARGOEXEC_IMAGE=$(ref_of argoexec)"
    echo "PROMOTION_IMAGE=$(ref_of operator)"
    echo "STEP_IMAGE=$(ref_of example)"
  } >"$tmp/images.env"
  echo "$all_keys" | tr ' ' '\n' | sed '/^$/d' >"$tmp/KEYS"
  rm -rf "$images_dir"
  mv "$tmp" "$images_dir"
fi
ln -sfn "$set_key" "$cache_root/images/current.tmp.$$"
mv -T "$cache_root/images/current.tmp.$$" "$cache_root/images/current"

if [[ $built -gt 0 ]]; then
  log "built $built image(s) in $((SECONDS - total_start))s"
else
  log "all images up to date"
fi
log "images are in $images_dir (also $cache_root/images/current)"
echo "export MLPIPELINE_IMAGES_DIR=$images_dir"
