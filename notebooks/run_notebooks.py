"""Execute every notebook in this folder; fail loudly on the first error.

CI runs it with ``BAYES_SSM_SMOKE=1``: notebooks read that variable and shrink their settings
(fewer draws, shorter series) so the whole set runs in a few minutes on 2 cores. Without
``--write`` the executed copies are thrown away; ``--write`` stores the outputs in place
(how the committed, fully executed notebooks are made: run without BAYES_SSM_SMOKE).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
# No progress bars in committed outputs (the fits in the notebooks also pass progress=False).
os.environ["BAYES_SSM_PROGRESS"] = "0"
# The kernel imports the checkout's bayes_ssm even where it is not pip-installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--write", action="store_true", help="save executed outputs in place")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args()
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    if not paths:
        print("no notebooks found")
        return 1
    for path in paths:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook, timeout=args.timeout, kernel_name="python3",
            resources={"metadata": {"path": str(HERE)}},
        )
        client.execute()
        if args.write:
            nbformat.write(notebook, path)
        print(f"executed {path.name} in {time.perf_counter() - start:.1f} s")
    print(f"{len(paths)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
