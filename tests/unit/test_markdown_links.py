"""Every relative link in the repository's Markdown points at a file, directory or heading."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.paths import REPO

# Directories of tools and builds, not of the repository's documents.
SKIPPED_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".mlpipeline"}
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in REPO.rglob("*.md")
        if not SKIPPED_DIRS.intersection(path.relative_to(REPO).parts)
    )


def without_code(text: str) -> str:
    """The text without fenced code blocks and code spans, whose brackets are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def link_targets(text: str) -> list[str]:
    prose = without_code(text)
    found = _INLINE_LINK.findall(prose) + _REFERENCE.findall(prose)
    return [target.strip("<>") for target in found]


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation dropped, spaces to -."""
    anchors: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """`target: problem` for each relative link of the file that points at nothing."""
    problems = []
    for target in link_targets(path.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = Path(os.path.normpath(path.parent / file_part)) if file_part else path
        shown = os.path.relpath(linked, root)
        if not linked.exists():
            problems.append(f"{target}: {shown} does not exist")
        elif (
            anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text())
        ):
            problems.append(f"{target}: no heading #{anchor} in {shown}")
    return problems


def test_links_and_anchors_are_parsed() -> None:
    text = (
        "# Title: the `make test` target\n"
        'See [a](docs/a.md), ![b](<img b.png>), [c](x.md#part "title"), '
        "[web](https://example.com) and `[not](a-link.md)`.\n"
        "```\n[nor](this.md)\n# not a heading\n```\n"
        "[ref]: ../y.md\n## Title: the `make test` target\n"
    )
    assert link_targets(text) == [
        "docs/a.md",
        "img b.png",
        "x.md#part",
        "https://example.com",
        "../y.md",
    ]
    assert heading_anchors(text) == {
        "title-the-make-test-target",
        "title-the-make-test-target-1",
    }


def test_a_missing_file_and_a_missing_heading_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "testing.md").write_text("# Testing\n\n## The cache\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "[gone](nowhere.md) [up](../README.md) [heading](testing.md#no-such-heading)\n"
        "[ok](testing.md#the-cache) [dir](.) [self](#page) [web](https://example.com/x.md)\n"
        "# Page\n"
    )
    assert broken_links(page, tmp_path) == [
        "nowhere.md: docs/nowhere.md does not exist",
        "../README.md: README.md does not exist",
        "testing.md#no-such-heading: no heading #no-such-heading in docs/testing.md",
    ]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []
