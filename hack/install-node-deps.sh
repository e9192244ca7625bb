#!/usr/bin/env bash
# Installs the Debian packages of the end-to-end cluster (tests/e2e, `make e2e-cluster`) and
# of its image builds (hack/build-images.sh), when any is missing. Needs root; does nothing
# when everything is there.
#
#   containerd, runc                 the node's container runtime
#   containernetworking-plugins      CNI bridge, host-local, loopback, portmap (/usr/lib/cni)
#   iptables, conntrack              kubelet's and kube-proxy's rules (nft backend)
#   iproute2                         `ip`: the node's veth pair and addresses
#   buildah                          builds the project's Dockerfile and the example's
#   mmdebstrap                       the local Python base image, from Debian packages
#   busybox-static                   a shell in Argo's executor image
#   uidmap                           newuidmap and newgidmap, for buildah
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack iproute2 buildah
  mmdebstrap busybox-static uidmap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install-node-deps: missing Debian packages ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-node-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
