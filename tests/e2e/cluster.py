"""A single-node Kubernetes cluster on this machine where pods really run.

Beside the control plane of tests/controlplane/harness.py (etcd, kube-apiserver, every
controller of kube-controller-manager), it starts kube-scheduler, containerd with runc,
kubelet and kube-proxy, Argo's workflow-controller, versitygw (the S3 store of Argo's
artifacts) and `mlflow server`, and prepares a namespace where workflows run.

Everything runs inside one network namespace and one mount namespace that the cluster creates
(`unshare`), so what the node changes stays in them: the bridge of the pods and their veths,
kubelet's and kube-proxy's iptables rules, the mounts of containers and volumes, containerd's
and kubelet's state under /run, /var/lib and /var/log (a tmpfs each, inside the namespace).
When the last process in them ends, they vanish with everything in them. Only three things
reach this machine's own namespaces, and :meth:`NodeCluster.stop` undoes each: a veth pair
whose host end carries the address this machine reaches the cluster by; the cgroups of pods
(under one cgroup root per cluster); and the processes, all of which are found and killed by
their network namespace, containerd's shims and the containers included.

Addresses: the cluster's side of the veth (`node_ip`) is where kube-apiserver, the S3 store
and MLflow listen; pods reach it through the bridge's gateway, this machine through the veth.
The pod network has no route and no NAT to anything else, so nothing leaves this machine.

Run ``python -m tests.e2e`` (``make e2e-cluster``) for a cluster in the foreground. Needs root.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hack.delivery_files import CHART_DIR
from tests.chart.helm import NAMESPACE as OPERATOR_NAMESPACE
from tests.chart.helm import RELEASE as OPERATOR_RELEASE
from tests.chart.helm import helm
from tests.controlplane.harness import (
    KUBERNETES_SERVICE_IP,
    REPO_ROOT,
    SERVICE_CIDR,
    WORK_PARENT,
    ControlPlane,
    ControlPlaneError,
    ManagedProcess,
    MissingBinaryError,
    _probe,
    _wait_until,
    bin_dir,
    find_binary,
    forget_at_exit,
    issue_client_certificate,
    stop_at_exit,
    unverified_context,
    write_kubeconfig,
)
from tests.mlflow.server import QUIET_ENV

__all__ = [
    "ClusterUnavailableError",
    "NodeCluster",
    "images_dir",
    "requirements_problem",
]

NODE_NAME = "mlpipeline-e2e"
POD_CIDR = "10.244.0.0/24"
POD_GATEWAY = "10.244.0.1"
BRIDGE = "cni0"
# The veth between this machine and the cluster: 10.213.<n>.1 here, 10.213.<n>.2 there.
LINK_PREFIX = "10.213"
ARGO_NAMESPACE = "argo"
PIPELINE_NAMESPACE = "pipelines"
S3_BUCKET = "argo-artifacts"
S3_ACCESS_KEY = "mlpipeline-e2e"
S3_SECRET_KEY = "mlpipeline-e2e-secret"  # a throwaway store on a private link
S3_PORT = 9000
MLFLOW_PORT = 5000
ENV_IMAGES_DIR = "MLPIPELINE_IMAGES_DIR"
# Commands the node needs from Debian's packages (hack/install-node-deps.sh installs them).
HOST_COMMANDS = ("unshare", "nsenter", "ip", "iptables", "conntrack", "containerd", "ctr", "runc")
CNI_BIN_DIR = Path("/usr/lib/cni")


class ClusterUnavailableError(ControlPlaneError):
    """The cluster cannot run on this machine (not root, not Linux, a package missing)."""


def requirements_problem(packages: bool = True) -> str | None:
    """Why a node cannot run here, in one line, or None when it can. ``packages=False`` leaves
    out what hack/install-node-deps.sh installs."""
    if sys.platform != "linux":
        return f"the single-node cluster needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "the single-node cluster needs root (kubelet, containerd, network namespaces)"
    if not packages:
        return None
    missing = [name for name in HOST_COMMANDS if shutil.which(name) is None]
    if not (CNI_BIN_DIR / "bridge").exists():
        missing.append(f"CNI plugins in {CNI_BIN_DIR}")
    if missing:
        return f"missing {', '.join(missing)}: run hack/install-node-deps.sh"
    return None


def images_dir() -> Path:
    """The directory of the image archives and images.env (`hack/build-images.sh`)."""
    env = os.environ.get(ENV_IMAGES_DIR)
    if env:
        directory = Path(env)
    else:
        result = subprocess.run(
            [str(REPO_ROOT / "hack" / "build-images.sh"), "--print-dir"],
            capture_output=True,
            text=True,
            check=False,
        )
        directory = Path(result.stdout.strip().removeprefix("export ").split("=", 1)[-1])
    if not (directory / "images.env").is_file():
        raise ClusterUnavailableError(
            f"no images in {directory or '(none)'}: run `make images` (hack/build-images.sh)"
        )
    return directory


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def _netns_inode(pid: int) -> int:
    return Path(f"/proc/{pid}/ns/net").stat().st_ino


def processes_in_netns(inode: int) -> list[int]:
    """Every process whose network namespace is ``inode``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "ns" / "net").stat().st_ino == inode:
                pids.append(int(entry.name))
    return pids


def processes_in_cgroup(name: str) -> list[int]:
    """Every process in the cgroup ``name`` or below it, in any hierarchy."""
    pids: set[int] = set()
    for procs in Path("/sys/fs/cgroup").glob(f"*/{name}/**/cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in procs.read_text().split())
    return sorted(pids)


def _kill_cluster(inode: int, cgroup_root: str, timeout: float = 15.0) -> None:
    """SIGKILL every process of the cluster until none is left: those in its network
    namespace (containerd's shims among them) and those in its pods' cgroups (the containers,
    each in a network namespace of its pod)."""
    deadline = time.monotonic() + timeout
    while pids := processes_in_netns(inode) + processes_in_cgroup(cgroup_root):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"processes {pids} of the cluster survive SIGKILL")
        time.sleep(0.05)


def _remove_cgroups(name: str, timeout: float = 30.0) -> None:
    """Remove the cgroup ``name`` from every hierarchy, children first. A cgroup stays busy
    for a moment after its last process was killed, until that process is reaped."""
    deadline = time.monotonic() + timeout
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        for directory, _dirs, _files in sorted(os.walk(top), key=lambda d: -len(d[0])):
            while True:
                try:
                    Path(directory).rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


def _create_cgroups(name: str) -> None:
    """Create the cgroup ``name`` in every hierarchy; cpuset needs its cpus and mems filled."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        directory = hierarchy / name
        directory.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (hierarchy / knob).exists():
                (directory / knob).write_text((hierarchy / knob).read_text())


def sweep_stale_clusters() -> None:
    """Undo what clusters whose owner died left: their processes, cgroups and directories."""
    if not WORK_PARENT.is_dir():
        return
    for directory in WORK_PARENT.glob("node-*"):
        try:
            owner = int((directory / "owner.pid").read_text().strip())
            state = json.loads((directory / "cluster.json").read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
            continue
        except ProcessLookupError:
            pass
        with contextlib.suppress(ControlPlaneError):
            _kill_cluster(int(state["netns_inode"]), str(state["cgroup_root"]))
        _remove_cgroups(str(state["cgroup_root"]))
        shutil.rmtree(directory, ignore_errors=True)


def _free_link_index() -> int:
    """An n such that 10.213.n.0/30 is used by no address of this machine."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    taken = {int(m) for m in re.findall(rf"inet {LINK_PREFIX}\.(\d+)\.", used)}
    for index in range(256):
        if index not in taken:
            return index
    raise ControlPlaneError(f"no free {LINK_PREFIX}.n.0/30 link for the cluster")


# Run by `unshare --net --mount` (so in the new namespaces, before anything else starts):
# a tmpfs over the directories whose state must not outlive the cluster, then wait forever.
_NAMESPACE_SETUP = """
set -e
for dir in /run /var/lib /var/log; do mount -t tmpfs -o mode=0755 tmpfs "$dir"; done
mkdir -p /run/netns /var/lib/kubelet /var/lib/cni /var/log/pods /var/log/containers
ip link set lo up
touch "$1"
exec sleep infinity
"""


@dataclass(eq=False)
class NodeCluster:
    """The single-node cluster. :meth:`start` / :meth:`stop`, or a context manager."""

    keep_workdir: bool = False
    start_timeout: float = 180.0
    extra_apiserver_args: Sequence[str] = ()  # e.g. an audit log, for the benchmark

    workdir: Path = field(default=Path(), init=False)
    node_ip: str = field(default="", init=False)
    host_ip: str = field(default="", init=False)
    images: dict[str, str] = field(default_factory=dict, init=False)
    control_plane: ControlPlane | None = field(default=None, init=False)
    processes: dict[str, ManagedProcess] = field(default_factory=dict, init=False)
    _holder: ManagedProcess | None = field(default=None, init=False)
    _netns_inode: int = field(default=0, init=False)
    _cgroup_root: str = field(default="", init=False)
    _host_link: str = field(default="", init=False)

    def __enter__(self) -> NodeCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses and files

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None
        return self.control_plane.kubeconfig

    @property
    def mlflow_uri(self) -> str:
        """MLflow's URL, the same from this machine and from pods."""
        return f"http://{self.node_ip}:{MLFLOW_PORT}"

    @property
    def s3_endpoint(self) -> str:
        return f"{self.node_ip}:{S3_PORT}"

    @property
    def s3_root(self) -> Path:
        """The directory of versitygw's posix backend: one directory per bucket."""
        return self.workdir / "s3"

    def ns_command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the cluster's network and mount namespaces."""
        assert self._holder is not None
        return ["nsenter", f"--target={self._holder.pid}", "--net", "--mount", "--", *argv]

    def ns_run(self, argv: Sequence[str], timeout: float = 120.0) -> str:
        """Run a command in the cluster's namespaces; its stdout, or an error with its output."""
        result = subprocess.run(
            self.ns_command(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise ControlPlaneError(
                f"{' '.join(argv)} exited {result.returncode}: {result.stderr or result.stdout}"
            )
        return result.stdout

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        """kubectl against the cluster, as its admin; stdout, or an error with stderr."""
        result = subprocess.run(
            [str(find_binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def env_lines(self) -> list[str]:
        """What `make e2e-cluster` prints for a user of the cluster."""
        return [
            f"KUBECONFIG={self.kubeconfig}",
            f"MLFLOW_TRACKING_URI={self.mlflow_uri}",
            f"MLFLOW_CLUSTER_URI={self.mlflow_uri}",
            f"STEP_IMAGE={self.images['STEP_IMAGE']}",
            f"PROMOTION_IMAGE={self.images['PROMOTION_IMAGE']}",
            f"PIPELINE_NAMESPACE={PIPELINE_NAMESPACE}",
        ]

    # ------------------------------------------------------------------ life cycle

    def start(self) -> NodeCluster:
        problem = requirements_problem()
        if problem:
            raise ClusterUnavailableError(problem)
        binaries = {
            name: find_binary(name)
            for name in (
                "kubelet",
                "kube-scheduler",
                "kube-proxy",
                "workflow-controller",
                "versitygw",
                "kubectl",
            )
        }
        image_files = images_dir()
        self.images = _read_env_file(image_files / "images.env")
        stop_at_exit(self)
        sweep_stale_clusters()
        WORK_PARENT.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="node-", dir=WORK_PARENT))
        (self.workdir / "owner.pid").write_text(f"{os.getpid()}\n")
        try:
            self._start_namespaces()
            self._start_control_plane()
            self._start_containerd(image_files)
            self._start_kubelet(binaries["kubelet"])
            self._start_scheduler_and_proxy(binaries["kube-scheduler"], binaries["kube-proxy"])
            self._start_s3(binaries["versitygw"])
            self._start_mlflow()
            self._start_argo(binaries["workflow-controller"])
            self._prepare_pipeline_namespace()
            self._install_operator()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(name, self.ns_command(argv), self.workdir / f"{name}.log", env=env)
        self.processes[name] = proc
        return proc

    def _wait(self, what: str, check: Callable[[], bool], *procs: ManagedProcess) -> None:
        _wait_until(what, check, self.start_timeout, procs, interval=0.2)

    def _start_namespaces(self) -> None:
        ready = self.workdir / "namespaces.ready"
        self._holder = ManagedProcess(
            "namespaces",
            [
                "unshare",
                "--net",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                _NAMESPACE_SETUP,
                "sh",
                str(ready),
            ],
            self.workdir / "namespaces.log",
        )
        _wait_until("the cluster's namespaces", ready.exists, 30, [self._holder])
        self._netns_inode = _netns_inode(self._holder.pid)
        self._cgroup_root = f"mlpipeline-e2e-{self.workdir.name}"
        index = _free_link_index()
        self.host_ip, self.node_ip = f"{LINK_PREFIX}.{index}.1", f"{LINK_PREFIX}.{index}.2"
        self._host_link = f"mlpe2e{index}"
        (self.workdir / "cluster.json").write_text(
            json.dumps({"netns_inode": self._netns_inode, "cgroup_root": self._cgroup_root})
        )
        pid = str(self._holder.pid)
        for argv in (
            [
                "ip",
                "link",
                "add",
                self._host_link,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pid,
            ],
            ["ip", "addr", "add", f"{self.host_ip}/30", "dev", self._host_link],
            ["ip", "link", "set", self._host_link, "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        for argv in (
            ["ip", "addr", "add", f"{self.node_ip}/30", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "link", "add", BRIDGE, "type", "bridge"],
            ["ip", "addr", "add", f"{POD_GATEWAY}/24", "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
            # The API server calls Services (an admission webhook): a local connection needs a
            # route to the Service's address before kube-proxy rewrites it to a pod's.
            ["ip", "route", "add", SERVICE_CIDR, "dev", BRIDGE],
            ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
        ):
            self.ns_run(argv)
        _create_cgroups(self._cgroup_root)

    def _start_control_plane(self) -> None:
        plane = ControlPlane(
            workdir=self.workdir / "control-plane",
            keep_workdir=True,  # inside self.workdir, which stop() removes
            start_timeout=self.start_timeout,
            extra_apiserver_args=self.extra_apiserver_args,
            runs_pods=True,
            address=self.node_ip,
            command_prefix=self.ns_command([]),
        )
        self.control_plane = plane
        plane.start()
        # Argo's CRDs of the controller's own version, built beside it (not the reference copy).
        argo_crds = sorted((bin_dir() / "argo-crds").glob("argoproj.io_*.yaml"))
        if not argo_crds:
            raise MissingBinaryError(
                f"no Argo CRDs in {bin_dir() / 'argo-crds'}: run `make binaries`"
            )
        # This project's CRDs come with the chart (_install_operator), as for a user.
        plane.install_crds(argo_crds)
        plane.start_controller_manager(controllers=("*",))

    def _component_kubeconfig(self, name: str, user: str, group: str | None = None) -> Path:
        plane = self.control_plane
        assert plane is not None and plane.pki is not None
        cert, key = issue_client_certificate(plane.pki, name, user, group)
        return write_kubeconfig(
            self.workdir / f"{name}.kubeconfig", plane.server, plane.pki.ca_cert, cert, key
        )

    def _start_containerd(self, image_files: Path) -> None:
        cni_dir = self.workdir / "cni"
        cni_dir.mkdir()
        (cni_dir / "10-mlpipeline-e2e.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": NODE_NAME,
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,  # no NAT: the pods reach nothing beyond the node
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )
        config = self.workdir / "containerd.toml"
        config.write_text(
            f"""version = 2
root = "{self.workdir / "containerd"}"
state = "/run/containerd"
# "opt" would install into /opt/containerd of this machine.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{self.images["PAUSE_IMAGE"]}"
  # A process here may not lower its oom_score_adj: without this every sandbox fails.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_dir}"
"""
        )
        proc = self._spawn("containerd", ["containerd", "--config", str(config)])
        ctr = ["ctr", "--address", "/run/containerd/containerd.sock", "--namespace", "k8s.io"]

        def serving() -> bool:
            return (
                subprocess.run(
                    self.ns_command([*ctr, "version"]), capture_output=True, check=False
                ).returncode
                == 0
            )

        self._wait("containerd", serving, proc)
        for archive in sorted(image_files.glob("*.tar")):
            self.ns_run([*ctr, "images", "import", "--no-unpack", str(archive)], timeout=600)
        listed = self.ns_run([*ctr, "images", "ls", "-q"])
        missing = [ref for ref in self.images.values() if ref not in listed.split()]
        if missing:
            raise ControlPlaneError(f"images not in containerd after import: {missing}")

    def _start_kubelet(self, kubelet: Path) -> None:
        plane = self.control_plane
        assert plane is not None and plane.pki is not None
        kubeconfig = self._component_kubeconfig(
            "kubelet", f"system:node:{NODE_NAME}", "system:nodes"
        )
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("# no DNS in the test cluster: pods reach servers by address\n")
        config = self.workdir / "kubelet.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": self.node_ip,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "healthzPort": 10248,
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(plane.pki.ca_cert)},
                    },
                    "authorization": {"mode": "Webhook"},
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{self._cgroup_root}",
                    "failCgroupV1": False,
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
                    "resolvConf": str(resolv),
                    "clusterDomain": "cluster.local",
                    "serializeImagePulls": False,
                    # A shared development machine: evict nothing for lack of disk or memory.
                    "evictionHard": {
                        "memory.available": "100Mi",
                        "nodefs.available": "1%",
                        "imagefs.available": "1%",
                    },
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "protectKernelDefaults": False,
                }
            )
        )
        proc = self._spawn(
            "kubelet",
            [
                str(kubelet),
                f"--config={config}",
                f"--kubeconfig={kubeconfig}",
                "--root-dir=/var/lib/kubelet",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={self.node_ip}",
                "--v=1",
            ],
        )

        def ready() -> bool:
            node = plane.kube.get("v1", "Node", NODE_NAME)
            conditions = ((node or {}).get("status") or {}).get("conditions") or []
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        self._wait("the node to be Ready", ready, proc)

    def _start_scheduler_and_proxy(self, scheduler: Path, proxy: Path) -> None:
        kubeconfig = self._component_kubeconfig("scheduler", "system:kube-scheduler")
        proc = self._spawn(
            "kube-scheduler",
            [
                str(scheduler),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={self.node_ip}",
                "--leader-elect=false",
                "--v=1",
            ],
        )
        context = unverified_context()
        self._wait(
            "kube-scheduler /healthz",
            lambda: _probe(self.node_ip, 10259, "/healthz", context)[0] == 200,
            proc,
        )
        proxy_kubeconfig = self._component_kubeconfig("kube-proxy", "system:kube-proxy")
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(proxy_kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # nf_conntrack_max belongs to the whole machine: leave it alone.
                    "conntrack": {"maxPerCore": 0, "min": 0},
                }
            )
        )
        proc = self._spawn("kube-proxy", [str(proxy), f"--config={config}", "--v=1"])
        # Ready once it has written the `kubernetes` Service's rules.
        self._wait(
            "kube-proxy's rules for the kubernetes Service",
            lambda: KUBERNETES_SERVICE_IP in self.ns_run(["iptables-save", "-t", "nat"]),
            proc,
        )

    def _start_s3(self, versitygw: Path) -> None:
        (self.s3_root / S3_BUCKET).mkdir(parents=True)
        env = {
            **os.environ,
            "ROOT_ACCESS_KEY": S3_ACCESS_KEY,
            "ROOT_SECRET_KEY": S3_SECRET_KEY,
        }
        proc = self._spawn(
            "versitygw",
            [str(versitygw), "--port", self.s3_endpoint, "posix", str(self.s3_root)],
            env=env,
        )
        self._wait(
            "versitygw",
            lambda: _probe(self.node_ip, S3_PORT, "/", None)[0] in (200, 403),
            proc,
        )

    def _start_mlflow(self) -> None:
        root = self.workdir / "mlflow"
        root.mkdir()
        proc = self._spawn(
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                self.node_ip,
                "--port",
                str(MLFLOW_PORT),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                str(root / "artifacts"),
            ],
            env={**os.environ, **QUIET_ENV},
        )
        self._wait(
            "mlflow server /health",
            lambda: _probe(self.node_ip, MLFLOW_PORT, "/health", None)[0] == 200,
            proc,
        )

    def _start_argo(self, controller: Path) -> None:
        plane = self.control_plane
        assert plane is not None
        kube = plane.kube
        kube.create_namespace(ARGO_NAMESPACE)
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "workflow-controller-configmap", "namespace": ARGO_NAMESPACE},
                # Argo's init and wait containers, hardened as a namespace enforcing the
                # restricted Pod Security Standard requires (docs/argo-workflows.md).
                "data": {"executor": ARGO_EXECUTOR_CONFIG},
            }
        )
        proc = self._spawn(
            "workflow-controller",
            [
                str(controller),
                f"--kubeconfig={plane.kubeconfig}",
                f"--namespace={ARGO_NAMESPACE}",
                "--configmap=workflow-controller-configmap",
                f"--executor-image={self.images['ARGOEXEC_IMAGE']}",
                "--executor-image-pull-policy=IfNotPresent",
                "--loglevel=info",
            ],
            env={**os.environ, "LEADER_ELECTION_DISABLE": "true"},
        )
        self._wait(
            "workflow-controller /healthz",
            lambda: _probe(self.node_ip, 6060, "/healthz", None)[0] == 200,
            proc,
        )

    def _prepare_pipeline_namespace(self) -> None:
        """The namespace where workflows run: the executor's rights for every service account
        of it, the S3 credentials and the default artifact repository."""
        plane = self.control_plane
        assert plane is not None
        for doc in pipeline_namespace_objects(PIPELINE_NAMESPACE, self.s3_endpoint):
            plane.kube.apply(doc)

    def check_alive(self) -> None:
        """Raise if a process of the cluster died."""
        if self.control_plane is not None:
            self.control_plane.check_alive()
        for proc in self.processes.values():
            if not proc.running():
                raise ControlPlaneError(
                    f"{proc.name} exited ({proc.proc.returncode}):\n{proc.log_tail()}"
                )

    def _install_operator(self) -> None:
        """The operator as users deploy it: `helm install` of the chart, two replicas with
        leader election, the locally built image for the operator and the promotion step."""
        plane = self.control_plane
        assert plane is not None
        repository, tag = self.images["PROMOTION_IMAGE"].rsplit(":", 1)
        helm(
            "install",
            OPERATOR_RELEASE,
            str(CHART_DIR),
            f"--kubeconfig={plane.kubeconfig}",
            f"--namespace={OPERATOR_NAMESPACE}",
            "--create-namespace",
            "--set=replicaCount=2",
            f"--set=image.repository={repository}",
            f"--set=image.tag={tag}",
            f"--set=promotionImage.repository={repository}",
            f"--set=promotionImage.tag={tag}",
        )

        def available(deployment: dict[str, Any] | None) -> bool:
            status = (deployment or {}).get("status") or {}
            return status.get("availableReplicas") == 2 and status.get("updatedReplicas") == 2

        try:
            plane.kube.wait_for(
                "apps/v1",
                "Deployment",
                OPERATOR_RELEASE,
                OPERATOR_NAMESPACE,
                available,
                timeout=self.start_timeout,
                interval=0.5,
            )
        except TimeoutError:
            pods = self.kubectl("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide")
            raise ControlPlaneError(
                f"the operator's Deployment is not available:\n{pods}"
            ) from None

    def stop(self) -> None:
        """Stop everything and undo every change to this machine. Every step runs even when
        one before it failed; the failures are raised together at the end."""
        errors: list[str] = []

        def attempt(what: str, step: Callable[[], object]) -> None:
            try:
                step()
            except Exception as error:  # every step must still run
                errors.append(f"{what}: {error}")

        for name in reversed(list(self.processes)):
            attempt(f"stop {name}", self.processes.pop(name).stop)
        if self.control_plane is not None:
            attempt("stop the control plane", self.control_plane.stop)
        if self._netns_inode:
            attempt(
                "kill the cluster's processes",
                lambda: _kill_cluster(self._netns_inode, self._cgroup_root),
            )
        if self._holder is not None:
            attempt("stop the namespaces' holder", self._holder.stop)
            self._holder = None
        if self._host_link:
            # Gone with the namespace's end of the pair; this only catches a half-made pair.
            subprocess.run(["ip", "link", "del", self._host_link], capture_output=True, check=False)
        if self._cgroup_root:
            attempt("remove the cgroups", lambda: _remove_cgroups(self._cgroup_root))
        forget_at_exit(self)
        if self.workdir != Path() and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise ControlPlaneError("the cluster did not stop cleanly: " + "; ".join(errors))


# The `executor` key of Argo's controller ConfigMap: the restricted standard's settings, which
# only the controller's configuration gives Argo's own containers (the user is the pod's).
ARGO_EXECUTOR_CONFIG = """\
imagePullPolicy: IfNotPresent
securityContext:
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL]}
  runAsNonRoot: true
  seccompProfile: {type: RuntimeDefault}
"""


def pipeline_namespace_objects(namespace: str, s3_endpoint: str) -> list[dict[str, Any]]:
    """A namespace ready for workflows, as Argo documents it: the executor's Role (it reports
    each step's outputs as a WorkflowTaskResult; the artifact GC pods read and answer their
    WorkflowArtifactGCTasks) bound to every service account of the
    namespace, the S3 credentials, and the default artifact repository."""
    repository = {
        "s3": {
            "bucket": S3_BUCKET,
            "endpoint": s3_endpoint,
            "insecure": True,
            "accessKeySecret": {"name": "s3-credentials", "key": "accesskey"},
            "secretKeySecret": {"name": "s3-credentials", "key": "secretkey"},
            "keyFormat": "{{workflow.namespace}}/{{workflow.name}}/{{pod.name}}",
        }
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "argo-executor", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowtaskresults"],
                    "verbs": ["create", "patch"],
                },
                # Argo's artifact GC pods (spec.artifactGC) run as the workflow's account: they
                # read their tasks and report what they deleted.
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowartifactgctasks"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["argoproj.io"],
                    "resources": ["workflowartifactgctasks/status"],
                    "verbs": ["patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "argo-executor", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "argo-executor",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": f"system:serviceaccounts:{namespace}",
                }
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-credentials", "namespace": namespace},
            "stringData": {"accesskey": S3_ACCESS_KEY, "secretkey": S3_SECRET_KEY},
        },
        {
            # What `spec.mlflow.credentialsSecret: mlflow` attaches to the promotion step. This
            # MLflow server asks for no credentials, so these are only ever ignored.
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "mlflow", "namespace": namespace},
            "stringData": {
                "MLFLOW_TRACKING_USERNAME": "pipelines",
                "MLFLOW_TRACKING_PASSWORD": "unused",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "artifact-repositories",
                "namespace": namespace,
                "annotations": {"workflows.argoproj.io/default-artifact-repository": "default"},
            },
            "data": {"default": yaml.safe_dump(repository)},
        },
    ]
