"""The documentation: every public name has an API reference entry; committed notebook outputs
carry no machine paths and no warnings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import bayes_ssm

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _documented_names() -> set[str]:
    names = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        names |= set(re.findall(r"^::: bayes_ssm\.(\w+)\s*$", page.read_text(), re.M))
    return names


def test_every_public_name_is_in_the_api_reference():
    public = set(bayes_ssm.__all__) - {"__version__"}
    documented = _documented_names()
    assert public - documented == set(), "add these to a page of docs/api/"
    assert documented - public == set(), "docs/api/ documents names that are not public"
    assert "bayes_ssm.__version__" in (ROOT / "docs" / "api" / "index.md").read_text()


def test_every_api_page_and_notebook_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        assert f"api/{page.name}" in nav
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.name}" in nav


# What a committed output must not contain: a path of the machine that ran it, or a warning.
FORBIDDEN = ("/root", "/work", "/home/", ".venv", "site-packages", "Warning")


def _output_texts(output: dict):
    for key in ("text", "traceback", "evalue"):
        value = output.get(key)
        if value:
            yield "".join(value) if isinstance(value, list) else str(value)
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") or mime.endswith("json"):
            yield "".join(value) if isinstance(value, list) else json.dumps(value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_outputs_are_clean(path):
    notebook = json.loads(path.read_text())
    found = []
    for number, cell in enumerate(notebook["cells"]):
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"cell {number} failed"
            for text in _output_texts(output):
                found += [(number, word) for word in FORBIDDEN if word in text]
    assert found == [], f"{path.name}: (cell, forbidden text) {found}"
