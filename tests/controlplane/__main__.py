"""`python -m tests.controlplane`: run the test control plane in the foreground (`make cluster`)."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
from pathlib import Path

from tests.controlplane.harness import (
    ControlPlane,
    ControlPlaneError,
    argo_crd_files,
    project_crd_files,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.controlplane",
        description="Start etcd + kube-apiserver (+ kube-controller-manager) on 127.0.0.1 with "
        "this project's CRDs and Argo's CRDs installed; Ctrl-C stops everything.",
    )
    parser.add_argument(
        "--kubeconfig", type=Path, help="also copy the kubeconfig to this path (overwritten)"
    )
    parser.add_argument(
        "--no-controller-manager",
        action="store_true",
        help="do not start kube-controller-manager (garbage collector, namespace controller)",
    )
    parser.add_argument("--no-crds", action="store_true", help="install no CRDs")
    parser.add_argument(
        "--keep", action="store_true", help="keep the working directory (logs, etcd data)"
    )
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    plane = ControlPlane(keep_workdir=args.keep)
    try:
        plane.start()
        if not args.no_crds:
            names = plane.install_crds([*project_crd_files(), *argo_crd_files()])
            print(f"installed CRDs: {', '.join(names)}", flush=True)
        if not args.no_controller_manager:
            plane.start_controller_manager()
        kubeconfig = plane.kubeconfig
        if args.kubeconfig is not None:
            shutil.copyfile(plane.kubeconfig, args.kubeconfig)
            args.kubeconfig.chmod(0o600)
            kubeconfig = args.kubeconfig.resolve()
        print(f"control plane ready: {plane.server}", flush=True)
        for name, proc in plane.processes.items():
            print(f"  {name:<24} pid {proc.pid:<8} log {proc.log_path}", flush=True)
        print(f"\nexport KUBECONFIG={kubeconfig}\n", flush=True)
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            plane.check_alive()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping control plane ...", file=sys.stderr, flush=True)
        plane.stop()
    print("stopped.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
