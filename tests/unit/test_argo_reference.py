"""One Argo version everywhere: third_party/argo-workflows/ is the version the Go modules build."""

from __future__ import annotations

import re
from pathlib import Path

from tests.paths import ARGO_CRD_DIR, ARGO_GO_MODULES, ARGO_REFERENCE, ARGO_SCHEMA

ARGO_MODULE = "github.com/argoproj/argo-workflows/v4"


def required_version(go_mod: Path) -> str:
    """The version of Argo's module that a go.mod requires (in a require block or line)."""
    pattern = rf"^\s*(?:require\s+)?{re.escape(ARGO_MODULE)}\s+(v\S+)"
    found = re.findall(pattern, go_mod.read_text(), flags=re.MULTILINE)
    assert len(found) == 1, f"{go_mod}: expected one requirement of {ARGO_MODULE}, found {found}"
    return str(found[0])


def test_required_version_reads_a_require_block_entry(tmp_path: Path) -> None:
    go_mod = tmp_path / "go.mod"
    go_mod.write_text(f"module x\n\nrequire (\n\t{ARGO_MODULE} v9.8.7 // indirect\n)\n")
    assert required_version(go_mod) == "v9.8.7"


def test_reference_data_is_the_version_of_every_go_module() -> None:
    vendored = (ARGO_REFERENCE / "VERSION").read_text().strip()
    assert {m.name: required_version(m / "go.mod") for m in ARGO_GO_MODULES} == {
        "argo-validate": vendored,
        "argo": vendored,
    }, "run `make argo-reference` after changing Argo's version in both go.mod files"
    readme = (ARGO_REFERENCE / "README.md").read_text()
    assert readme.startswith(f"# Argo Workflows {vendored}: reference data\n")


def test_reference_data_has_the_schema_and_the_full_crds() -> None:
    assert ARGO_SCHEMA.is_file()
    assert (ARGO_REFERENCE / "LICENSE").is_file()
    assert sorted(p.name for p in ARGO_CRD_DIR.iterdir()) == [
        "argoproj.io_cronworkflows.yaml",
        "argoproj.io_workflows.yaml",
        "argoproj.io_workflowtemplates.yaml",
    ]
