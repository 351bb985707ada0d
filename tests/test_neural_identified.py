"""The identified parameterisation of the S4D network (issue 15, ``identifiable=True``).

The two forms are one model: every weight setting of the plain network has an image in the
identified form (:func:`identify`) with the same outputs and the same prior density in the
sampled coordinates, and the permuted and sign-flipped twins that :func:`identify` folds
together have the same outputs and prior density. The scale trade-off it leaves is checked to
be a likelihood ridge that the prior sees.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

import bayes_ssm as bs
from bayes_ssm.inference.advice import split_sites
from bayes_ssm.models import NeuralSSM
from bayes_ssm.models.neural_identified import identify, network_values

HORIZON = 4
OUTPUTS = ("log_lik", "y_fitted", "y_forecast")


def _series(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return 2.0 + np.cumsum(0.3 * rng.standard_normal(n)) + np.sin(np.arange(n) / 4.0)


def _program(model, y, scales, outputs=OUTPUTS):
    """A compiled map: site values -> (the outputs, the log joint density)."""

    def run(values):
        joint, tr = log_density(model.model, (y,), dict(scales=scales, horizon=HORIZON), values)
        return {k: tr[k]["value"] for k in outputs}, joint

    return jax.jit(run)


def _prior_draws(model, y, scales, num):
    """``num`` prior draws of every latent site, batched ``(num, ...)``."""

    def draw(key):
        with handlers.seed(rng_seed=key):
            tr = handlers.trace(model.model).get_trace(y, scales=scales, horizon=HORIZON)
        return {
            k: v["value"] for k, v in tr.items() if v["type"] == "sample" and not v["is_observed"]
        }

    draw = jax.jit(draw)
    draws = [draw(jax.random.key(7 + i)) for i in range(num)]
    return {k: np.stack([np.asarray(d[k]) for d in draws]) for k in draws[0]}


def _one(draws, i):
    return {k: np.array(v[i]) for k, v in draws.items()}


def _twin(values, perm, sign, num_layers, prefix="net."):
    """Channel ``perm`` and ``sign`` applied by hand (channel by channel, no fancy indexing)."""
    out = {k: np.array(v, copy=True) for k, v in values.items()}
    d = len(perm)
    for new, old in enumerate(perm):
        s = sign[new]
        out[prefix + "w_in"][:, new] = s * values[prefix + "w_in"][:, old]
        for name in ("b_in", "w_out", "w_scale"):
            if prefix + name in values:
                out[prefix + name][new] = s * values[prefix + name][old]
        for i in range(num_layers):
            pre = f"{prefix}layer{i}."
            out[pre + "half_life"][new] = values[pre + "half_life"][old]
            for name in ("C_real", "C_imag", "D"):
                out[pre + name][new] = s * values[pre + name][old]
            for row in range(d):
                out[pre + "mix"][row, new] = s * values[pre + "mix"][perm[row], old]
    return out


def test_identified_form_has_the_same_outputs(x64):
    y = _series()
    kw = dict(width=3, state_size=1, num_layers=2, input_lags=2, neural_scale=True)
    plain, ident = NeuralSSM(**kw), NeuralSSM(**kw, identifiable=True)
    scales = plain.data_scales(y)
    run_plain = _program(plain, y, scales)
    run_ident = _program(ident, y, scales, OUTPUTS + ("net.w_in", "net.layer0.half_life"))
    draws = _prior_draws(plain, y, scales, 3)
    draws["obs_sd"] = np.full(3, 0.5)  # keep the log densities of order one
    rng = np.random.default_rng(0)
    for i in range(3):
        theta = _one(draws, i)
        base, lp = run_plain(theta)
        # a hand-made twin (random permutation and signs) of the plain form: same outputs,
        # same prior density
        perm, sign = rng.permutation(3), rng.choice([-1.0, 1.0], 3)
        twin = _twin(theta, perm, sign, 2)
        got, lp_twin = run_plain(twin)
        for k in OUTPUTS:
            np.testing.assert_allclose(got[k], base[k], rtol=1e-10, atol=1e-10)
        assert float(lp_twin) == pytest.approx(float(lp), rel=1e-12)
        # its image in the identified form: in the region, same outputs
        folded = identify(theta, num_layers=2)
        assert np.all(np.diff(folded["net.layer0.half_life_raw"]) > 0)
        assert np.all(folded["net.w_in_lead"] > 0)
        got, lq = run_ident(folded)
        for k in OUTPUTS:
            np.testing.assert_allclose(got[k], base[k], rtol=1e-10, atol=1e-10)
        weights = network_values(folded)  # what the identified network computes with
        for k in ("net.w_in", "net.layer0.half_life"):
            np.testing.assert_allclose(got[k], weights[k], rtol=1e-12)
        # the same prior density (the fold is by sort and abs of i.i.d. coordinates)
        assert float(lq) == pytest.approx(float(lp), rel=1e-12)
        # the twin folds to the same point
        again = identify(twin, num_layers=2)
        for k, v in folded.items():
            np.testing.assert_allclose(again[k], v, rtol=1e-12, atol=1e-12)
    # batched over leading axes as the draws of a fit are: (chain, draw, ...)
    batched = identify({k: v.reshape(1, 3, *v.shape[1:]) for k, v in draws.items()}, num_layers=2)
    for i in range(3):
        for k, v in identify(_one(draws, i), num_layers=2).items():
            np.testing.assert_array_equal(batched[k][0, i], v)


def test_hybrid_with_an_identified_network_has_the_same_outputs(x64):
    y = _series(80)
    sts = bs.StructuralTS(trend=None)
    net_kw = dict(width=2, state_size=1, num_layers=1)
    plain = bs.HybridTS(structural=sts, neural=NeuralSSM(**net_kw))
    ident = bs.HybridTS(structural=sts, neural=NeuralSSM(**net_kw, identifiable=True))
    scales = plain.data_scales(y)
    outputs = ("log_lik", "y_forecast")
    theta = _one(_prior_draws(plain, y, scales, 1), 0)
    folded = identify(theta, num_layers=1, prefix="neural.")
    base, lp = _program(plain, y, scales, outputs)(theta)
    got, lq = _program(ident, y, scales, outputs)(folded)
    for k in outputs:
        np.testing.assert_allclose(got[k], base[k], rtol=1e-10, atol=1e-10)
    assert float(lq) == pytest.approx(float(lp), rel=1e-12)
    assert set(ident.unread_sites) <= set(folded) and plain.unread_sites == ()


def test_check_skips_the_reflected_coordinates_only():
    model = NeuralSSM(width=2, state_size=1, num_layers=1, identifiable=True)
    draws = dict.fromkeys(["net.w_in_lead", "net.layer0.half_life_raw", "net.b_in", "obs_sd"])
    user, nuisance = split_sites(SimpleNamespace(model=model, draws=draws))
    assert user == ["obs_sd"] and nuisance == ["net.b_in"]
    plain = SimpleNamespace(model=NeuralSSM(width=2), draws=draws)
    assert split_sites(plain)[1] == ["net.w_in_lead", "net.layer0.half_life_raw", "net.b_in"]


def test_scale_trade_off_is_a_likelihood_ridge_not_a_symmetry(x64):
    """What the identified form leaves: channel j's input side times a, C, D, w_out over a."""
    y = _series()
    model = NeuralSSM(width=2, state_size=1, num_layers=1, identifiable=True)
    scales = model.data_scales(y)
    plain = NeuralSSM(width=2, state_size=1, num_layers=1)
    theta = identify(_one(_prior_draws(plain, y, scales, 1), 0), num_layers=1)
    theta["obs_sd"] = np.array(0.5)
    a, j = 2.5, 1
    scaled = {k: np.array(v, copy=True) for k, v in theta.items()}
    for name in ("net.w_in_lead", "net.w_in_rest", "net.b_in"):
        scaled[name][..., j] *= a
    scaled["net.layer0.mix"][:, j] *= a
    for name in ("net.layer0.C_real", "net.layer0.C_imag"):
        scaled[name][j] /= a
    scaled["net.layer0.D"][j] /= a
    scaled["net.w_out"][j] /= a
    run = _program(model, y, scales, ("log_lik",))
    (base, lp), (got, lq) = run(theta), run(scaled)
    np.testing.assert_allclose(got["log_lik"], base["log_lik"], rtol=1e-10, atol=1e-10)
    assert abs(float(lq - lp)) > 0.1  # the priors tell the two apart


def test_identifiable_is_checked():
    with pytest.raises(ValueError, match="identifiable=True is available"):
        NeuralSSM(layer="selective", identifiable=True)
    with pytest.raises(ValueError, match="identifiable=True is available"):
        NeuralSSM(direction="bidirectional", identifiable=True)
    with pytest.raises(ValueError, match="identifiable must be True or False"):
        NeuralSSM(identifiable="yes")
    model = NeuralSSM(identifiable=True)
    assert bs.models.model_from_spec(model.spec()) == model
