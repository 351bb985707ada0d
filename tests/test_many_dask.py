"""``backend="dask"``: the fits from a two-worker LocalCluster equal the local fits bit for bit,
and a bad series is reported there too while the others are kept."""

from __future__ import annotations

import numpy as np
import pytest

import bayes_ssm as bs

distributed = pytest.importorskip("distributed")

from test_many_failures import MODEL, SVI, frame_with_bad_series  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_dask_equals_local_and_reports_the_bad_series(client):
    frame = frame_with_bad_series()
    with pytest.warns(RuntimeWarning, match="'bad'"):
        local = bs.fit_svi_many(MODEL, frame, key=4, batch="loop", **SVI)
    with pytest.warns(RuntimeWarning, match="'bad'"):
        remote = bs.fit_svi_many(
            MODEL, frame, key=4, batch="loop", backend="dask", scheduler=client, **SVI
        )
    assert remote.info["backend"] == "dask" and remote.info["workers"] == 2
    assert list(remote) == list(local) == ["a", "c"]
    assert remote.failures == local.failures
    for ident in local:
        for name, value in local[ident].guide_params.items():
            np.testing.assert_array_equal(remote[ident].guide_params[name], value)
        for name, value in local[ident].draws.items():
            np.testing.assert_array_equal(remote[ident].draws[name], value)
        np.testing.assert_array_equal(remote[ident].svi_loss, local[ident].svi_loss)


def test_dask_bad_scheduler():
    with pytest.raises(ValueError, match="scheduler must be None, an address"):
        bs.fit_svi_many(MODEL, frame_with_bad_series(), key=0, backend="dask", scheduler=3)
    with pytest.raises(ValueError, match="backend must be one of"):
        bs.fit_svi_many(MODEL, frame_with_bad_series(), key=0, backend="spark")


def _assert_fits_identical(local, remote):
    """Every field of every Fit equal bit for bit: model, data, scales, guide parameters,
    draws, sample stats, the SVI loss trace and the info record (its wall-clock seconds
    aside)."""
    assert list(remote) == list(local)
    for ident in local:
        a, b = local[ident], remote[ident]
        assert a.model.spec() == b.model.spec() and a.method == b.method
        assert a.scales == b.scales
        np.testing.assert_array_equal(a.data.y, b.data.y)
        assert a.data.index.equals(b.data.index) and a.data.freq == b.data.freq
        assert a.data.covariate_names == b.data.covariate_names and a.data.name == b.data.name
        for field in ("guide_params", "draws", "sample_stats"):
            x, y = getattr(a, field), getattr(b, field)
            assert list(x) == list(y), field
            for name, value in x.items():
                np.testing.assert_array_equal(y[name], value, err_msg=f"{field}[{name}]")
        np.testing.assert_array_equal(b.svi_loss, a.svi_loss)  # exact: no tolerance
        timing = {"elapsed_s"}
        assert {k: v for k, v in a.info.items() if k not in timing} == {
            k: v for k, v in b.info.items() if k not in timing
        }


@pytest.mark.slow
def test_dask_worker_processes_equal_local_bit_for_bit():
    """Across processes: a LocalCluster of 2 worker PROCESSES (each its own JAX, its own
    compilation, XLA on one thread as ``backend="dask"`` starts them, and a Python hash seed
    other than this process's) gives the local fits bit for bit, loss trace included, with
    the bad series reported there too.

    The hash seed matters: NumPyro's ``Trace_ELBO`` sums the ELBO in the hash order of the site
    names, so its loss trace (not the parameters) differed by an ulp between processes; the
    drivers use ``OrderedTraceELBO`` (trace order). The workers' fixed seed differs from this
    process's (random unless PYTHONHASHSEED is set)."""
    import os

    from bayes_ssm.inference.dask_backend import one_thread_env

    frame = frame_with_bad_series()
    with pytest.warns(RuntimeWarning, match="'bad'"):
        local = bs.fit_svi_many(MODEL, frame, key=4, batch="loop", **SVI)
    env = one_thread_env() | {"PYTHONHASHSEED": "12345"}
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with pytest.warns(RuntimeWarning, match="'bad'"):
            remote = bs.fit_svi_many(
                MODEL, frame, key=4, batch="loop", backend="dask", scheduler=client, **SVI
            )
        pids = client.run(os.getpid)
        seeds = client.run(lambda: os.environ.get("PYTHONHASHSEED"))
    assert len(set(pids.values()) | {os.getpid()}) == 3  # really other processes
    assert set(seeds.values()) == {"12345"}
    assert remote.failures == local.failures
    _assert_fits_identical(local, remote)
