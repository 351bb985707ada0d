"""Run independent fits in threads of one process (the default's candidates, ``workers=``).

Most of a default fit is XLA compilation and small compiled programs, both of which run
without Python's GIL: two fits in two threads use two cores. What does need care:

* **NumPyro's effect-handler stack is one global list per process.** Two threads tracing a
  NumPyro program at the same time would push and pop each other's handlers. A worker thread
  therefore holds :data:`NUMPYRO_LOCK` all the time, except inside the compiled programs
  declared with :func:`locked_jit`: such a call lets go of the lock, and the traced Python body
  takes it again while it traces. So tracing (and any NumPyro code run eagerly) is one thread
  at a time, while lowering, XLA compilation and execution of those programs overlap.
* **JAX's configuration contexts are per thread** (``with jax.enable_x64(True)``): a worker
  runs under the calling thread's ``jax_enable_x64`` and ``jax_default_device``.
* Each task gets its own key from the caller, so results do not depend on the order the
  threads finish in: ``workers=1`` (a plain loop, no lock, no thread) and ``workers=2`` give
  the same numbers, bit for bit (``tests/test_auto_workers.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax

from bayes_ssm.inference import program_store

__all__ = ["NUMPYRO_LOCK", "locked_jit", "map_in_threads", "resolve_workers", "default_workers"]


class _HandlerLock:
    """A re-entrant lock that a worker thread holds by default (:meth:`worker`) and hands back
    around compiled calls (:meth:`released`); outside worker threads it is taken only while
    tracing, where nobody else waits for it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._local = threading.local()

    def _depth(self) -> int:
        return getattr(self._local, "depth", 0)

    @contextlib.contextmanager
    def held(self):
        depth = self._depth()
        if depth == 0:
            self._lock.acquire()
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self._lock.release()

    @contextlib.contextmanager
    def worker(self):
        """Hold the lock for a worker thread's whole task (its base level)."""
        with self.held():
            self._local.base = self._depth()
            try:
                yield
            finally:
                self._local.base = 0

    @contextlib.contextmanager
    def released(self):
        """Let go of a worker's base-level hold for the duration (a no-op outside workers and
        inside a trace, where the handler stack is in use)."""
        depth = self._depth()
        if depth == 0 or depth != getattr(self._local, "base", 0):
            yield
            return
        self._local.depth, self._local.base = 0, 0  # a trace inside takes it as a new hold
        self._lock.release()
        try:
            yield
        finally:
            self._lock.acquire()
            self._local.depth, self._local.base = depth, depth


NUMPYRO_LOCK = _HandlerLock()


def locked_jit(fun: Callable | None = None, **jit_kwargs) -> Callable:
    """``jax.jit(fun, **jit_kwargs)`` whose Python body traces under :data:`NUMPYRO_LOCK` and
    whose calls from a worker thread release the lock until the result is ready (lowering, XLA
    compilation and the run overlap with other workers). ``.__wrapped__`` is ``fun``. When a
    program turned on :mod:`bayes_ssm.inference.program_store`, calls run the executable
    kept there (``static_argnames`` only: static arguments by name)."""
    if fun is None:
        return functools.partial(locked_jit, **jit_kwargs)

    @functools.wraps(fun)
    def body(*args, **kwargs):
        with NUMPYRO_LOCK.held():
            return fun(*args, **kwargs)

    jitted = jax.jit(body, **jit_kwargs)
    stored = program_store.StoredProgram(fun, jitted, jit_kwargs.get("static_argnames", ()))

    @functools.wraps(fun)
    def call(*args, **kwargs):
        with NUMPYRO_LOCK.released():
            out = stored.call(args, kwargs)  # the executable kept on disk, when the store is on
            if out is program_store.MISS:
                out = jitted(*args, **kwargs)
            return jax.block_until_ready(out)

    call.jitted, call.stored = jitted, stored
    call.lower, call._cache_size = jitted.lower, jitted._cache_size  # as on a jitted function
    return call


def default_workers(num_tasks: int) -> int:
    """``min(num_tasks, usable cores)``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(int(num_tasks), cores))


def resolve_workers(workers: int | None, num_tasks: int) -> int:
    """``workers`` checked (a positive integer, or None for :func:`default_workers`), at most
    ``num_tasks``."""
    if workers is None:
        return default_workers(num_tasks)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer or None; got {workers!r}")
    return max(1, min(workers, int(num_tasks)))


def map_in_threads(fn: Callable[..., Any], items: Iterable, workers: int) -> list:
    """``[fn(item) for item in items]``, in ``workers`` threads when ``workers > 1``.

    Results come back in the order of ``items``; the first task's exception (in that order)
    is raised after all tasks have stopped. Worker threads run under the caller's
    ``jax_enable_x64`` and ``jax_default_device`` and hold :data:`NUMPYRO_LOCK` except inside
    :func:`locked_jit` programs.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    x64 = bool(jax.config.jax_enable_x64)
    device = jax.config.jax_default_device

    def task(item):
        with jax.enable_x64(x64), jax.default_device(device), NUMPYRO_LOCK.worker():
            return fn(item)

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = [pool.submit(task, item) for item in items]
        for future in futures:  # wait for every task before raising the first error
            future.exception()
        return [future.result() for future in futures]
