"""The public API is typed: py.typed ships, and every public function and method is annotated."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import bayes_ssm

ROOT = Path(__file__).resolve().parents[1]


def _unannotated(name, fn) -> list[str]:
    sig = inspect.signature(fn)
    missing = [
        p
        for p, v in sig.parameters.items()
        if p not in ("self", "cls") and v.annotation is inspect.Parameter.empty
    ]
    if sig.return_annotation is inspect.Signature.empty and fn.__name__ != "__init__":
        missing.append("return")
    return [f"{name}: {m}" for m in missing]


def test_public_functions_and_methods_are_annotated():
    missing = []
    for name in bayes_ssm.__all__:
        obj = getattr(bayes_ssm, name)
        if inspect.isfunction(obj):
            missing += _unannotated(name, obj)
        elif inspect.isclass(obj):
            # its own methods and those it inherits from the package (e.g. Fit's read-outs)
            owners = [c for c in obj.__mro__ if c.__module__.startswith("bayes_ssm")]
            for owner in reversed(owners):
                for attr, member in vars(owner).items():
                    if not attr.startswith("_") and inspect.isfunction(member):
                        missing += _unannotated(f"{name}.{attr}", member)
    assert missing == []


def test_py_typed_is_package_data():
    assert (ROOT / "bayes_ssm" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["bayes_ssm"]
