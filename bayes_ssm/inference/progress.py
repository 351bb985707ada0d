"""When to show a progress bar, and the bar itself (tqdm.auto: a widget in Jupyter, text elsewhere).

A bar is shown when the caller asks for one (``progress=True``, the default of the fitting
functions) and someone can see it: stderr is a terminal, or the code runs in a Jupyter kernel.
Piped or redirected output, CI logs and batch jobs stay quiet. ``BAYES_SSM_PROGRESS=0`` in the
environment silences every bar (the notebook runner uses it, so that committed outputs carry no
bars).
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["in_notebook", "interactive", "show_progress", "progress_bar"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a plain IPython terminal)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half-imported: not a kernel we can draw in
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def interactive() -> bool:
    """True when a person can see a bar: stderr is a terminal, or a Jupyter kernel."""
    if os.environ.get("BAYES_SSM_PROGRESS", "").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        tty = sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stderr
        tty = False
    return tty or in_notebook()


def show_progress(progress: bool) -> bool:
    """Whether to draw a bar: asked for (``progress``) and :func:`interactive`."""
    return bool(progress) and interactive()


def quiet_tqdm_import() -> None:
    """Import ``tqdm.auto`` without its ``TqdmWarning: IProgress not found``.

    Without ipywidgets, ``tqdm.auto`` in a notebook falls back to the text bar, warning once at
    its first import. That warning says nothing actionable to a user of this package (the text
    bar works), so the first import happens here with the warning silenced. NumPyro imports
    ``tqdm.auto`` too, so this runs before NumPyro is imported (see ``bayes_ssm/__init__``).
    """
    if "tqdm.autonotebook" in sys.modules:
        return
    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


def progress_bar(*, total: int, desc: str, progress: bool):
    """A ``tqdm.auto`` bar, disabled unless :func:`show_progress` says to draw it."""
    quiet_tqdm_import()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not show_progress(progress))
