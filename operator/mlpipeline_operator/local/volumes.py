"""Volumes, locally: a directory per volume, which a step reaches at its mount path.

A step's absolute paths live under its own root (`RunLayout.container_path`); a mount is a
symbolic link there, at the mount path, to the volume's directory (or to its `subPath`), so
`{{volumes.NAME.path}}` resolves as an artifact's path does. The directory of a volume is:

- the one given with `--volume NAME=DIR`, for any volume;
- else, for a persistentVolumeClaim or a claim template, `RUN_DIR/volumes/NAME`, shared by every
  step that mounts it and kept with the run;
- else, for an emptyDir, `RUN_DIR/steps/STEP/volumes/NAME`, fresh for each attempt, as a pod
  gets a new emptyDir;
- a configMap or a secret has no local content: mounting one needs `--volume`.
"""

from __future__ import annotations

import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlpipeline_operator.api.models import MLPipelineSpec, Step, VolumeMount
from mlpipeline_operator.core import exit_as_step
from mlpipeline_operator.local.plan import RunLayout
from mlpipeline_operator.validation import volume_names


class VolumeUsageError(ValueError):
    """A `--volume` that names no volume or no directory, or a volume that needs one."""


@dataclass(frozen=True)
class LocalVolumes:
    """Where each volume of a run is on this machine."""

    # Volumes with one directory for the whole run: given with --volume, or under the run's.
    shared: dict[str, Path] = field(default_factory=dict)
    # emptyDir volumes: a fresh directory for each attempt of each step.
    per_attempt: frozenset[str] = frozenset()

    def directory(self, layout: RunLayout, step: str, volume: str) -> Path:
        if volume in self.shared:
            return self.shared[volume]
        return layout.step_dir(step) / "volumes" / volume


def _mounted(spec: MLPipelineSpec) -> set[str]:
    steps = list(spec.steps)
    if spec.on_exit is not None:
        steps.append(exit_as_step(spec.on_exit))
    return {m.name for s in steps for m in s.volume_mounts}


def check_volumes(spec: MLPipelineSpec, given: Mapping[str, str]) -> None:
    """That every `--volume NAME=DIR` names a volume and a directory, and that every mounted
    configMap or secret has one. Raises VolumeUsageError."""
    names = volume_names(spec)
    for name, directory in given.items():
        if name not in names:
            defined = ", ".join(names) or "none"
            raise VolumeUsageError(
                f"--volume {name}={directory}: unknown volume; defined volumes: {defined}"
            )
        if not Path(directory).is_dir():
            raise VolumeUsageError(f"--volume {name}={directory}: not a directory")
    mounted = _mounted(spec)
    for volume in spec.volumes:
        if volume.name in given or volume.name not in mounted:
            continue
        if volume.config_map is not None or volume.secret is not None:
            kind = "configMap" if volume.config_map is not None else "secret"
            raise VolumeUsageError(
                f'volume "{volume.name}" is a {kind}, which has no files on this machine: give '
                f"a directory holding them with --volume {volume.name}=DIR"
            )


def local_volumes(
    spec: MLPipelineSpec, layout: RunLayout, given: Mapping[str, str]
) -> LocalVolumes:
    """The volumes of a valid pipeline on this machine, once `check_volumes` passed."""
    shared = {name: Path(directory).resolve() for name, directory in given.items()}
    per_attempt: set[str] = set()
    for volume in spec.volumes:
        if volume.name in shared:
            continue
        if volume.empty_dir is not None:
            per_attempt.add(volume.name)
        elif volume.persistent_volume_claim is not None:
            shared[volume.name] = layout.root / "volumes" / volume.name
    for template in spec.volume_claim_templates:
        shared.setdefault(template.name, layout.root / "volumes" / template.name)
    return LocalVolumes(shared, frozenset(per_attempt))


def _depth(volume_mount: VolumeMount) -> int:
    return posixpath.normpath(volume_mount.mount_path).count("/")


def mount(step: Step, layout: RunLayout, volumes: LocalVolumes) -> None:
    """Link each mount path of the step, under its fresh root, to its volume's directory (made
    when missing, as Kubernetes makes a missing subPath). Raises OSError."""
    if any(m.name in volumes.per_attempt for m in step.volume_mounts):
        fresh = layout.step_dir(step.name) / "volumes"  # a new pod's emptyDir volumes
        if fresh.exists():
            shutil.rmtree(fresh)
    # Outer mounts first: an inner mount's point is then made inside the outer volume, as the
    # container runtime makes it.
    for volume_mount in sorted(step.volume_mounts, key=_depth):
        source = volumes.directory(layout, step.name, volume_mount.name)
        if volume_mount.sub_path:
            source = source / posixpath.normpath(volume_mount.sub_path)
        source.mkdir(parents=True, exist_ok=True)
        target = layout.container_path(step.name, volume_mount.mount_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():  # the point of an inner mount, left in a shared volume
            target.unlink()
        target.symlink_to(source, target_is_directory=True)
