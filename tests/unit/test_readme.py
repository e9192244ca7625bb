"""The README's example pipeline is a valid MLPipeline that compiles."""

from __future__ import annotations

import re

import yaml

from mlpipeline_operator.compiler.workflow import compile_document
from mlpipeline_operator.validation import validate_document
from tests.paths import REPO

_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_the_readme_example_is_valid_and_compiles() -> None:
    blocks = _YAML_BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))
    (example,) = [yaml.safe_load(b) for b in blocks if "kind: MLPipeline" in b]
    assert validate_document(example)[1] == []
    tasks = compile_document(example)["spec"]["templates"][0]["dag"]["tasks"]
    assert [t["name"] for t in tasks] == ["extract", "train", "deploy", "promote-model"]
