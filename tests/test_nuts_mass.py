"""``fit_nuts(dense_mass="auto")``: dense for global parameters only, diagonal with per-step
latents."""

import numpy as np
import pytest

import bayes_ssm as bs
from bayes_ssm.inference import engine
from bayes_ssm.inference.fitting import _prepare_timed
from bayes_ssm.inference.nuts_mass import DENSE_MAX, GLOBAL_SITE_MAX, mass_structure


def test_rule_decisions():
    small = {"sigma_level": (), "sigma_obs": (), "coef": (4,)}
    assert mass_structure(small) is True
    per_step = {**small, "obs_precision": (300,)}
    assert mass_structure(per_step) is False
    only_big = {"w": (GLOBAL_SITE_MAX + 1,)}
    assert mass_structure(only_big) is False
    too_many = {f"s{i}": (GLOBAL_SITE_MAX,) for i in range(DENSE_MAX // GLOBAL_SITE_MAX + 1)}
    assert mass_structure(too_many) is False
    assert mass_structure(per_step, True) is True
    assert mass_structure(per_step, False) is False
    with pytest.raises(ValueError, match="dense_mass"):
        mass_structure(small, "dense")


def test_programs_with_per_step_latents_stay_diagonal():
    """The default's Gaussian candidates get the dense matrix; the Student-t candidate, whose
    program samples a precision per step, keeps the diagonal one."""
    y = np.sin(np.arange(120) / 5.0) + np.random.default_rng(0).normal(0, 0.3, 120)
    model = bs.StructuralTS(
        trend=None, seasonal=[bs.Seasonal(12, harmonics=2)], likelihood="student_t"
    )
    data = _prepare_timed(model, y, None, None)
    shapes = engine.latent_shapes(data[0], data[1].y, data[2])
    per_step = [n for n, s in shapes.items() if int(np.prod(s, dtype=int)) >= 120]
    assert per_step, shapes  # the precisions are a latent site of the program
    assert mass_structure(shapes) is False
    gaussian = bs.StructuralTS(trend="damped", seasonal=[bs.Seasonal(12, harmonics=2)], ar_order=1)
    model, data, scales = _prepare_timed(gaussian, y, None, None)
    assert mass_structure(engine.latent_shapes(model, data.y, scales)) is True
