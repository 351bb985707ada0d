"""Print pip constraints that pin every dependency of pyproject.toml (core and the extras named on
the command line) at its declared minimum: ``name>=X`` becomes ``name==X``.

Used by ``make test-min``: the package is installed with ``pip install -c <this output>`` so CI
tests the oldest versions the package claims to support, next to the newest ones.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

# Minimum versions that pyproject's bounds imply but cannot state (a transitive dependency whose
# newest release breaks the oldest declared one): pinned here, with the reason.
TRANSITIVE = {}


def main(extras: list[str]) -> None:
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*", req)
        if m is None:
            raise SystemExit(f"cannot read a minimum version from {req!r}")
        pins[m.group(1).lower()] = m.group(3)
    pins.update(TRANSITIVE)
    for name in sorted(pins):
        print(f"{name}=={pins[name]}")


if __name__ == "__main__":
    main(sys.argv[1:])
