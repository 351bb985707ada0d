"""Where ``batch="auto"`` should switch from one vmapped program to a loop of single fits on a
CPU: vmap against loop, side by side, for several series counts and SVI step counts (or NUTS
iterations), wall-clock AND process CPU seconds (on a shared machine the CPU seconds are the
steadier measure: other engineers' load stretches the wall clock, not the work).

Same simulated weekly panel and model as ``benchmarks/many_series.py`` (T = ``--length``,
``StructuralTS(seasonal=Seasonal(52.18, harmonics=2))``). SVI runs a fixed number of steps (one
window: ``check_every = steps``); NUTS 1 chain, ``--warmup`` + ``--draws`` at depth <=
``--tree-depth``. vmap: a second, compiled call of ``fit_*_many(batch="vmap")``; loop:
``fit_svi`` / ``fit_nuts`` on ``--loop-series`` series after one warm-up fit (its cost per series
does not depend on the number of series). The last column says what ``batch="auto"``
(``bayes_ssm.inference.batch_choice``) runs for that many series on a CPU and whether the
measurement agrees (a program wider than the group size must lose to the loop, one within it
must win).

    PYTHONPATH=. nice -n 10 python benchmarks/many_auto.py --method svi --series 2 10 30 100 \\
        --steps 300 2000
    PYTHONPATH=. nice -n 10 python benchmarks/many_auto.py --method nuts --series 2 10 30 \\
        --warmup 10 --draws 10 --tree-depth 4
"""

from __future__ import annotations

import argparse
import json

import jax
from many_series import PERIOD, cpu_seconds, simulate, timed

import bayes_ssm as bs
from bayes_ssm.data.atomic import atomic_path
from bayes_ssm.data.long_format import split_long
from bayes_ssm.inference.batch_choice import auto_batch, auto_group_size


def loop_cost(fit_one, frame, count):
    """Wall and CPU seconds per series of ``fit_one`` over ``count`` series after a warm-up."""
    series = list(split_long(frame).values())[: count + 1]
    keys = jax.random.split(jax.random.PRNGKey(1), len(series))
    fit_one(series[0], keys[0])
    _, wall = timed(lambda: [fit_one(y, k) for y, k in zip(series[1:], keys[1:], strict=True)])
    return wall / (len(series) - 1), timed.cpu / (len(series) - 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=["svi", "nuts"], default="svi")
    ap.add_argument("--series", type=int, nargs="+", default=[2, 10, 30, 100])
    ap.add_argument("--steps", type=int, nargs="+", default=[300, 2000], help="SVI steps")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--tree-depth", type=int, default=4)
    ap.add_argument("--length", type=int, default=104)
    ap.add_argument("--loop-series", type=int, default=3)
    ap.add_argument("--out", help="JSON file for the rows")
    args = ap.parse_args(argv)
    model = bs.StructuralTS(seasonal=bs.Seasonal(PERIOD, harmonics=2))
    largest = simulate(max(max(args.series), args.loop_series + 1), args.length)
    settings = args.steps if args.method == "svi" else [args.warmup + args.draws]
    print(
        f"# {jax.default_backend()}, jax {jax.__version__}; {args.method}; T = {args.length}; "
        + (
            f"steps {args.steps} (one window)"
            if args.method == "svi"
            else f"NUTS 1 chain, {args.warmup} + {args.draws}, depth <= {args.tree_depth}"
        ),
        flush=True,
    )
    print(
        "| method | steps or iterations | series | vmap s | vmap CPU s | compile s | loop s a "
        "series | loop CPU s a series | vmap / loop (wall) | vmap / loop (CPU) | auto picks |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    rows = []
    for setting in settings:
        if args.method == "svi":
            opts = dict(steps=setting, check_every=setting, num_samples=100, progress=False)

            def many(frame, opts=opts):
                return bs.fit_svi_many(model, frame, key=0, batch="vmap", **opts)

            def one(y, k, opts=opts):
                return bs.fit_svi(model, y, key=k, **opts)

        else:
            opts = dict(
                num_chains=1, num_warmup=args.warmup, num_samples=args.draws,
                max_tree_depth=args.tree_depth,
            )  # fmt: skip

            def many(frame, opts=opts):
                return bs.fit_nuts_many(model, frame, key=0, batch="vmap", **opts)

            def one(y, k, opts=opts):
                return bs.fit_nuts(model, y, key=k, progress=False, **opts)

        loop_s, loop_cpu = loop_cost(one, largest, args.loop_series)
        for n in args.series:
            ids = largest["unique_id"].unique()[:n]
            frame = largest[largest["unique_id"].isin(ids)]
            _, first = timed(lambda: many(frame))  # noqa: B023
            _, warm = timed(lambda: many(frame))  # noqa: B023
            warm_cpu = timed.cpu
            wall_ratio, cpu_ratio = n * loop_s / warm, n * loop_cpu / warm_cpu
            group = auto_group_size("cpu")
            one_program = auto_batch(args.method, "cpu", n) == "vmap" and n <= group
            pick = "vmap, one program" if one_program else f"vmap in programs of {group}"
            agrees = one_program == (cpu_ratio > 1)  # wider programs lost: groups were right
            row = dict(
                method=args.method, setting=setting, series=n, vmap_s=warm, vmap_cpu_s=warm_cpu,
                compile_s=first - warm, loop_s=loop_s, loop_cpu_s=loop_cpu,
                wall_ratio=wall_ratio, cpu_ratio=cpu_ratio, auto=pick, auto_agrees=agrees,
            )  # fmt: skip
            rows.append(row)
            print(
                f"| {args.method} | {setting} | {n} | {warm:.2f} | {warm_cpu:.2f} | "
                f"{first - warm:.1f} | {loop_s:.2f} | {loop_cpu:.2f} | {wall_ratio:.2f}x | "
                f"{cpu_ratio:.2f}x | {pick} ({'agrees' if agrees else 'DISAGREES'}) |",
                flush=True,
            )
    if args.out:
        with atomic_path(args.out) as tmp, open(tmp, "w") as fh:
            json.dump(rows, fh, indent=1)
    print(f"# process CPU seconds in all: {cpu_seconds():.0f}")


if __name__ == "__main__":
    main()
