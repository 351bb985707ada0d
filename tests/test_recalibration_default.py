"""The default recalibration map is named in one place (``recalibration.DEFAULT_MAP``).

``recalibrate=True``, the default of ``bs.auto_fit`` / ``bs.forecast`` / ``AutoTS`` and the
CLI without ``--recalibrate MAP``, must all mean that map (docs/default.md, "Session 10: the
recalibration default on two keys").
"""

from __future__ import annotations

import argparse
import inspect

import numpy as np
import pytest

from bayes_ssm.inference.recalibration import DEFAULT_MAP, MODES, check_mode


@pytest.fixture(autouse=True)
def _x64():
    import jax

    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_true_means_the_default_map_everywhere():
    import bayes_ssm as bs
    from bayes_ssm.cli import _common
    from bayes_ssm.inference.auto import RECALIBRATE, AutoTS

    assert DEFAULT_MAP in MODES
    assert check_mode(True) == DEFAULT_MAP
    assert check_mode(False) is None
    assert RECALIBRATE is True  # the default is "the default map", not a second name for it
    assert inspect.signature(bs.auto_fit).parameters["recalibrate"].default is RECALIBRATE
    assert AutoTS().recalibrate is RECALIBRATE
    forecast_params = inspect.signature(bs.forecast).parameters
    if "recalibrate" in forecast_params:  # else passed through **kwargs to auto_fit
        assert forecast_params["recalibrate"].default is RECALIBRATE
    assert _common.recalibrate_option(argparse.Namespace()) is RECALIBRATE
    parser = argparse.ArgumentParser()
    _common.add_recalibrate_arg(parser)
    assert check_mode(_common.recalibrate_option(parser.parse_args(["--recalibrate"]))) == (
        DEFAULT_MAP
    )


def test_true_forecasts_equal_the_named_default_map():
    from tests.test_recalibration import level_fit, simulate_level, stacked

    rng = np.random.default_rng(21)
    y = simulate_level(rng, 120, 0.3, 0.2)
    y[-20:] += 0.6 * rng.standard_normal(20)  # a noisier end: the maps act differently
    fit = level_fit(y, sigma_obs=0.1, sigma_level=0.066, draws=500)
    by_true = stacked(fit, True).forecast(3, key=0)
    by_name = stacked(fit, DEFAULT_MAP).forecast(3, key=0)
    np.testing.assert_array_equal(by_true.to_numpy(), by_name.to_numpy())
    assert by_true.attrs["recalibration"] == by_name.attrs["recalibration"]
    assert f"{DEFAULT_MAP} map" in by_true.attrs["recalibration"]
    # and it is a recalibration: the raw mixture's 80% intervals are narrower here
    raw = stacked(fit, False).forecast(3, key=0)
    width = lambda f: (f["upper_80"] - f["lower_80"]).to_numpy()  # noqa: E731
    assert np.all(width(by_true) > width(raw))
