"""``backend="dask"``: groups of series fitted on the workers of a ``dask.distributed`` cluster.

The many-series drivers (:func:`bayes_ssm.fit_svi_many`, :func:`bayes_ssm.fit_nuts_many`) split
the series into chunks (series of one length together), send each chunk with its series' keys
to a worker (``Client.submit``), and gather the fits. A series is fitted with the same key
wherever it runs, so with ``batch="loop"`` (the CPU default) the fits are the local ones:
bit for bit, with in-process workers and with worker processes, loss trace included
(``tests/test_many_dask.py``). Worker processes have Python hash seeds of their own; NumPyro's
``Trace_ELBO`` summed the ELBO in the hash order of the site names, which made the SVI loss
trace (not the parameters) differ by a float32 ulp between processes for some seeds; the
drivers' ``OrderedTraceELBO`` sums in trace order, so nothing depends on the hash seed. XLA's
CPU threading (one thread in the workers, the machine's pool here) does not change the bits
of these programs (measured: equal fits either way).
With ``batch="vmap"`` they agree up to float rounding of the batched arithmetic.
A series whose fit fails numerically is reported (``FitCollection.failures``) and the others
kept; a chunk whose task is lost (a worker killed) reports its series as failed with the error.
Bad input (a ``ValueError`` raised on a worker) is raised here, naming the series.

On a real cluster::

    # on the scheduler host
    dask scheduler                                  # listens on tcp://HOST:8786
    # on every worker host (same Python environment with bayes_ssm[dask] installed)
    dask worker tcp://HOST:8786 --nworkers 4 --nthreads 1

    fits = bs.fit_svi_many(model, frame, key=0, backend="dask", scheduler="tcp://HOST:8786")

With ``scheduler=None`` a ``LocalCluster`` (one process per core, one thread each, XLA on one
thread: :func:`one_thread_env`) is started for the call and closed after it: every call then
pays the workers' start and their compilation (about 45 s on the shared 2-core machine, against
2.6 s for 16 short fits). For repeated calls, start the cluster once and pass its client
(``scheduler=client``): the workers keep their compiled programs between calls. Workers of a
real cluster are best started with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` too when
they run one worker process per core. Requires the ``dask`` extra:
``pip install bayes_ssm[dask]``.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["map_series", "chunks", "one_thread_env"]


def _client(scheduler):
    """``(client, owned)``: a client for ``scheduler`` (None: a new LocalCluster)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ValueError(
            "backend='dask' needs dask.distributed: pip install 'bayes_ssm[dask]'"
        ) from err
    if isinstance(scheduler, Client):
        return scheduler, False
    if scheduler is None:
        import os

        workers = max(1, min(os.cpu_count() or 1, 8))
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, env=one_thread_env()
        )
        return Client(cluster), True
    if isinstance(scheduler, str):
        return Client(scheduler), True
    raise ValueError(
        f"scheduler must be None, an address like 'tcp://host:8786' or a distributed.Client; "
        f"got {scheduler!r}"
    )


def one_thread_env() -> dict[str, str]:
    """Environment of a local worker process: XLA's CPU backend on one thread.

    The LocalCluster runs one worker process per core; XLA's default CPU threading would give
    each of them a thread pool as large as the machine, and the processes would fight over the
    cores (measured on 2 cores: 0.76x one process with the default threading, 1.05x with one
    thread; ``benchmarks/README.md``). The fits are the same either way (bit for bit)."""
    import os

    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        flags = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    return {"XLA_FLAGS": flags, "OMP_NUM_THREADS": "1"}


def chunks(series, num_workers: int, per_worker: int = 2) -> list[list[str]]:
    """Series ids in chunks of one length each, about ``per_worker`` chunks per worker."""
    by_length: dict[int, list[str]] = {}
    for ident, y in series.items():
        by_length.setdefault(len(y), []).append(ident)
    size = max(1, math.ceil(len(series) / max(1, num_workers * per_worker)))
    return [ids[i : i + size] for ids in by_length.values() for i in range(0, len(ids), size)]


# NumPyro's effect-handler stack is one global list per process: two fits running in threads
# of one process would corrupt each other's traces. A worker with several threads (or
# ``LocalCluster(processes=False)``) therefore runs one chunk at a time; use processes for
# parallelism (the default LocalCluster does).
_FIT_LOCK = threading.Lock()


def _run_chunk(fn, model, series, keys, kwargs):
    """Worker side: ``fn`` on one chunk (``keys`` as a numpy array)."""
    import jax.numpy as jnp

    with _FIT_LOCK:
        return fn(model, series, jnp.asarray(keys), **kwargs)


def map_series(fn, model, series, keys, *, scheduler=None, **kwargs):
    """``fn(model, chunk, chunk_keys, **kwargs)`` on the workers, merged.

    Parameters
    ----------
    fn : callable
        :func:`bayes_ssm.inference.many_svi.svi_series` or
        :func:`bayes_ssm.inference.many_nuts.nuts_series`; returns ``(fits, failures, info)``.
    series : dict of str to pandas.Series
    keys : Array, shape ``(series, 2)``
        Series ``i``'s key (whatever chunk it lands in).
    scheduler : None, str or distributed.Client

    Returns
    -------
    (fits, failures, info)
    """
    from distributed import as_completed

    client, owned = _client(scheduler)
    try:
        num_workers = max(1, len(client.scheduler_info().get("workers", {})))
        keys = np.asarray(keys)
        position = {ident: i for i, ident in enumerate(series)}
        futures = {}
        for chunk in chunks(series, num_workers):
            part = {ident: series[ident] for ident in chunk}
            part_keys = keys[[position[ident] for ident in chunk]]
            part_kwargs = kwargs
            if kwargs.get("covariates") is not None:  # only this chunk's covariates travel
                covs = kwargs["covariates"]
                part_kwargs = {**kwargs, "covariates": {ident: covs[ident] for ident in chunk}}
            future = client.submit(_run_chunk, fn, model, part, part_keys, part_kwargs, pure=False)
            futures[future] = chunk
        fits, failures, groups = {}, {}, []
        for future in as_completed(futures):
            chunk = futures[future]
            try:
                chunk_fits, chunk_failures, info = future.result()
            except ValueError:
                raise
            except Exception as err:  # a lost task: its series fail, the rest are kept
                failures.update(dict.fromkeys(chunk, f"{type(err).__name__}: {err}"))
                continue
            fits.update(chunk_fits)
            failures.update(chunk_failures)
            groups.extend(info.get("groups", []))
            batch = info.get("batch")
    finally:
        if owned:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    order = {ident: i for i, ident in enumerate(series)}
    groups.sort(key=lambda g: order[g[0]] if g else 0)
    info = {"groups": groups, "batch": locals().get("batch", "loop"), "workers": num_workers}
    return fits, failures, info
