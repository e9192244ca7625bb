"""Volumes in the local runner: a claim's and a claim template's directory shared by the steps
that mount them, an emptyDir fresh for each attempt, `--volume NAME=DIR`, and its usage errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.local.helpers import pipeline, run_local, step, write

WRITE = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
# Fails unless the file holds argv[2].
READ = "import sys; sys.exit(0 if open(sys.argv[1]).read() == sys.argv[2] else 1)"
VOLUMES: dict[str, Any] = {
    "volumes": [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "settings", "configMap": {"name": "settings"}},
    ],
    "volumeClaimTemplates": [
        {
            "name": "scratch",
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        }
    ],
}


def write_then_read(volume: str, sub_path: str | None = None) -> list[dict[str, Any]]:
    written = {"name": volume, "mountPath": "/mnt/out"}
    read = {"name": volume, "mountPath": "/in", "readOnly": True}
    if sub_path is not None:
        written["subPath"] = read["subPath"] = sub_path
    path = f"{{{{volumes.{volume}.path}}}}/greeting"
    return [
        step("write", WRITE, args=[path, "hello"], volumeMounts=[written]),
        step("read", READ, dependsOn=["write"], args=[path, "hello"], volumeMounts=[read]),
    ]


def test_a_claim_is_a_directory_of_the_run_shared_by_its_steps(tmp_path: Path) -> None:
    doc = pipeline(write_then_read("data", sub_path="a/b"), **VOLUMES)
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert (run.code, run.err) == (0, "")
    assert (tmp_path / "run" / "volumes" / "data" / "a" / "b" / "greeting").read_text() == "hello"
    mounted = tmp_path / "run" / "steps" / "read" / "root" / "in"
    assert mounted.resolve() == (tmp_path / "run" / "volumes" / "data" / "a" / "b").resolve()


def test_nested_mounts_in_two_steps(tmp_path: Path) -> None:
    # The inner mount (listed first) is made inside the outer claim, by each step in turn.
    mounts = [{"name": "scratch", "mountPath": "/d/inner"}, {"name": "data", "mountPath": "/d"}]
    path = "{{volumes.scratch.path}}/greeting"
    steps = [
        step("write", WRITE, args=[path, "hello"], volumeMounts=mounts),
        step("read", READ, dependsOn=["write"], args=[path, "hello"], volumeMounts=mounts),
    ]
    run = run_local(write(tmp_path, pipeline(steps, **VOLUMES)), tmp_path / "run")
    assert (run.code, run.err) == (0, "")
    assert (tmp_path / "run" / "volumes" / "scratch" / "greeting").read_text() == "hello"
    assert (tmp_path / "run" / "volumes" / "data" / "inner").is_symlink()


def test_a_claim_template_is_a_directory_of_the_run(tmp_path: Path) -> None:
    doc = pipeline(write_then_read("scratch"), **VOLUMES)
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert (run.code, run.err) == (0, "")
    assert (tmp_path / "run" / "volumes" / "scratch" / "greeting").read_text() == "hello"


def test_an_empty_dir_is_not_shared_by_steps(tmp_path: Path) -> None:
    doc = pipeline(write_then_read("tmp"), **VOLUMES)
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert run.code == 1
    assert run.step("write")["phase"] == "Succeeded"
    assert run.step("read")["phase"] == "Failed"
    assert (tmp_path / "run" / "steps" / "write" / "volumes" / "tmp" / "greeting").exists()


def test_an_empty_dir_is_fresh_for_each_attempt(tmp_path: Path) -> None:
    # The first attempt leaves a file in the emptyDir and fails (a claim remembers that it
    # ran); the retry must not find the file.
    script = (
        "import os, sys\n"
        "empty, shared = sys.argv[1], sys.argv[2]\n"
        "if os.path.exists(os.path.join(empty, 'left')): sys.exit(3)\n"
        "open(os.path.join(empty, 'left'), 'w').close()\n"
        "first = not os.path.exists(os.path.join(shared, 'tried'))\n"
        "open(os.path.join(shared, 'tried'), 'w').close()\n"
        "sys.exit(1 if first else 0)\n"
    )
    flaky = step(
        "flaky",
        script,
        args=["{{volumes.tmp.path}}", "{{volumes.data.path}}"],
        volumeMounts=[
            {"name": "tmp", "mountPath": "/scratch/t"},
            {"name": "data", "mountPath": "/d"},
        ],
        retry={"limit": 1},
    )
    run = run_local(write(tmp_path, pipeline([flaky], **VOLUMES)), tmp_path / "run")
    assert (run.code, run.err) == (0, "")
    assert run.step("flaky")["attempts"] == 2


def test_a_host_directory_given_with_volume(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "conf").mkdir(parents=True)
    (host / "conf" / "greeting").write_text("hello")
    read = step(
        "read",
        READ,
        args=["{{volumes.settings.path}}/greeting", "hello"],
        volumeMounts=[{"name": "settings", "mountPath": "/etc/app", "subPath": "conf"}],
    )
    doc = pipeline([read], **VOLUMES)
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--volume", f"settings={host}")
    assert (run.code, run.err) == (0, "")


def test_a_config_map_needs_a_directory(tmp_path: Path) -> None:
    read = step("read", "pass", volumeMounts=[{"name": "settings", "mountPath": "/etc/app"}])
    run = run_local(write(tmp_path, pipeline([read], **VOLUMES)), tmp_path / "run")
    assert run.code == 2
    assert run.err == (
        'mlpipeline run: volume "settings" is a configMap, which has no files on this machine: '
        "give a directory holding them with --volume settings=DIR\n"
    )
    assert not (tmp_path / "run").exists()


def test_an_unknown_volume_flag_is_a_usage_error(tmp_path: Path) -> None:
    doc = pipeline([step("noop", "pass")], **VOLUMES)
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--volume", f"dta={tmp_path}")
    assert run.code == 2
    assert run.err == (
        f"mlpipeline run: --volume dta={tmp_path}: unknown volume; defined volumes: data, tmp, "
        "settings, scratch\n"
    )


def test_a_volume_flag_needs_a_directory(tmp_path: Path) -> None:
    doc = pipeline([step("noop", "pass")], **VOLUMES)
    missing = tmp_path / "missing"
    run = run_local(write(tmp_path, doc), tmp_path / "run", "--volume", f"data={missing}")
    assert (run.code, run.err) == (2, f"mlpipeline run: --volume data={missing}: not a directory\n")


def test_the_exit_step_mounts_a_volume(tmp_path: Path) -> None:
    doc = pipeline(
        write_then_read("data")[:1],
        onExit={
            "command": ["python", "-c", READ, "{{volumes.data.path}}/greeting", "hello"],
            "volumeMounts": [{"name": "data", "mountPath": "/report"}],
        },
        **VOLUMES,
    )
    run = run_local(write(tmp_path, doc), tmp_path / "run")
    assert (run.code, run.err) == (0, "")
    assert run.step("on-exit")["phase"] == "Succeeded"
