"""Shared fixtures: the real-photo corpus beside the repository (``../shared/corpus``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_dir() -> Path:
    """The corpus folder; a clear failure when it is missing (CI always has it)."""
    if not (CORPUS / "README.md").is_file():
        pytest.fail(
            f"the test corpus is missing: expected it at {CORPUS} (../shared/corpus beside"
            " the repository)",
            pytrace=False,
        )
    return CORPUS


def corpus_files(*subdirs: str) -> list[Path]:
    """Every image file under the corpus (or under the given sub-folders), sorted."""
    base = CORPUS
    roots = [base / s for s in subdirs] if subdirs else [base]
    files = sorted(
        p for r in roots for p in r.rglob("*") if p.is_file() and p.name != "README.md"
    )
    return files


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()
