"""Execute every notebook in this folder; fail loudly on the first error.

CI runs it with ``BAYES_SSM_SMOKE=1``: notebooks read that variable and shrink their settings
(fewer draws, shorter series) so the whole set runs in a few minutes on 2 cores. Without
``--write`` the executed copies are thrown away; ``--write`` stores the outputs in place
(how the committed, fully executed notebooks are made: run without BAYES_SSM_SMOKE), each
written atomically (``bayes_ssm.data.atomic.atomic_path``). ``--jobs N`` runs N notebooks at once
(each in its own kernel process; CI uses 2 on its 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bayes_ssm.data.atomic import atomic_path  # noqa: E402

HERE = Path(__file__).resolve().parent
# No progress bars in committed outputs (the fits in the notebooks also pass progress=False).
os.environ["BAYES_SSM_PROGRESS"] = "0"
# The kernel imports the checkout's bayes_ssm even where it is not pip-installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
)


async def _execute(path: Path, args, slots: asyncio.Semaphore) -> str | None:
    """Run one notebook; return None on success, else the error's text."""
    async with slots:
        start = time.perf_counter()
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook, timeout=args.timeout, kernel_name="python3",
            resources={"metadata": {"path": str(HERE)}},
        )  # fmt: skip
        try:
            await client.async_execute()
        except Exception as err:  # noqa: BLE001 - reported with the notebook's name below
            print(f"FAILED {path.name} after {time.perf_counter() - start:.1f} s", flush=True)
            return f"{path.name}: {err}"
        if args.write:
            with atomic_path(path) as tmp:
                nbformat.write(notebook, tmp)
        print(f"executed {path.name} in {time.perf_counter() - start:.1f} s", flush=True)
        return None


async def _execute_all(paths, args) -> list[str]:
    slots = asyncio.Semaphore(max(1, args.jobs))
    results = await asyncio.gather(*(_execute(p, args, slots) for p in paths))
    return [r for r in results if r is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--write", action="store_true", help="save executed outputs in place")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once")
    args = parser.parse_args()
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    if not paths:
        print("no notebooks found")
        return 1
    failures = asyncio.run(_execute_all(paths, args))
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{len(paths) - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
