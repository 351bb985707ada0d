"""SVI's initialisation program: compile seconds of NumPyro's ``svi.init`` on the whole program
(its validity check evaluates the potential energy *and its gradient*: the Kalman filter's)
against ``_svi_init`` (the program's latent sites only; ``svi.latent_program``), per default
candidate on the last 400 ILI weeks, alternating in one process, and whether the two states
are equal bit for bit.

Usage::

    PYTHONPATH=. python benchmarks/svi_init_compile.py [--n 400] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from bayes_ssm.data import datasets
    from bayes_ssm.inference import auto
    from bayes_ssm.inference import svi as _svi
    from bayes_ssm.inference.fitting import _prepare_timed

    y = datasets.load("ili").iloc[-args.n :]
    z = np.log(y)
    candidates = auto.default_candidates(auto.seasonal_periods("W-SAT", z.to_numpy()))
    from bayes_ssm.inference.schedules import default_optimizer

    optimizer = default_optimizer(0.01)
    key = jax.random.PRNGKey(0)
    print("| candidate | run | numpyro svi.init s | latent-only init s | ratio | equal | load |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, model in candidates.items():
        model, data, scales = _prepare_timed(model, z, None, None)
        yy, cov = _svi.jnp_data(data)

        def whole(k, v, d, model=model):
            return _svi._make_svi(model, "normal", optimizer).init(
                k, v, **_svi._kwargs(None, d, None)
            )

        def latent(k, v, d, model=model):
            program = _svi.latent_program(model.model)
            svi = _svi._make_svi(model, "normal", optimizer, program=program)
            return svi.init(k, v, **_svi._kwargs(None, d, None))

        dyn = {k: jax.numpy.asarray(v) for k, v in scales.items()}
        for rep in range(args.repeats):
            load = os.getloadavg()[0]
            seconds, states = [], []
            for fn in (whole, latent):
                start = time.perf_counter()
                compiled = jax.jit(fn).lower(key, yy, dyn).compile()
                seconds.append(time.perf_counter() - start)
                states.append(jax.tree.leaves(compiled(key, yy, dyn)))
            equal = all(
                np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(*states, strict=True)
            )
            print(
                f"| {name} | {rep + 1} | {seconds[0]:.2f} | {seconds[1]:.2f} | "
                f"{seconds[1] / seconds[0]:.2f} | {equal} | {load:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
