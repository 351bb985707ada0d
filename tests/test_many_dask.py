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
