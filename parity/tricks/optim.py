"""Registry entries: optim (AdaBound, AMSBound, AdaBoundW).

A case is an initial parameter array, a short sequence of gradients ``[T, *shape]``, the
hyperparameters and an lr multiplier per step (see :func:`parity.strategies.optimizer_cases`).
Both sides take the same gradients — the trajectories cannot feed back into them — and return the
parameter trajectory ``[T, *shape]``. Torch schedules the lr with ``LambdaLR``; jax with an optax
schedule ``count -> lr·factor[count]``. The runs are in float64 (jax inside
``jax.enable_x64(True)``, which does not leak out of the adapter) so that any difference in the
algorithm shows up far above rounding; ``tests/test_optim.py`` also checks float32.
"""

from __future__ import annotations

import numpy as np

from parity.compare import Check

__all__ = ["CHECKS", "MEMBERS", "VARIANTS", "torch_trajectory", "jax_trajectory"]

# registry name -> (torch_impl.optim class name, jax_impl.optim factory name)
MEMBERS = {
    "adabound": ("AdaBound", "adabound"),
    "amsbound": ("AMSBound", "amsbound"),
    "adaboundw": ("AdaBoundW", "adaboundw"),
}

# registry name -> (member, keyword options given to both sides): the same member in another mode
VARIANTS = {
    "adaboundw_lr_decay": ("adaboundw", {"scale_decay_by_lr": True}),  # AdamW's decay, lr-scaled
}


def torch_trajectory(member: str, case: dict, *, dtype: str = "float64", options: dict | None = None) -> np.ndarray:
    """Run the torch_impl optimizer over ``case["grads"]``; the params after each step, stacked.
    ``options`` are further keyword arguments of the optimizer (see :data:`VARIANTS`)."""
    import torch

    import torch_impl.optim as O

    tdtype = getattr(torch, dtype)
    p = torch.nn.Parameter(torch.tensor(np.asarray(case["params"]), dtype=tdtype))
    opt = getattr(O, MEMBERS[member][0])(
        [p],
        lr=case["lr"],
        betas=(case["b1"], case["b2"]),
        final_lr=case["final_lr"],
        gamma=case["gamma"],
        eps=case["eps"],
        weight_decay=case["weight_decay"],
        **(options or {}),
    )
    grads = np.asarray(case["grads"])
    factors = [float(f) for f in case["lr_scale"]]
    sched = None
    if case["scheduled"]:
        last = len(factors) - 1
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: factors[min(epoch, last)])
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=tdtype)
        opt.step()
        if sched is not None:
            sched.step()
        out.append(p.detach().clone())
    return torch.stack(out).numpy()


def jax_trajectory(
    member: str, case: dict, *, dtype: str = "float64", jit: bool = False, options: dict | None = None
) -> np.ndarray:
    """Run the jax_impl optimizer over ``case["grads"]`` with ``optax.apply_updates``.

    float64 runs inside ``jax.enable_x64(True)``. The schedule's base lr is the constructor lr,
    as torch's; it is passed as ``base_lr`` only when the first factor is not 1 (otherwise the
    default, ``learning_rate(0)``, is used). ``jit`` compiles the step (once per case).
    """
    import contextlib

    import jax
    import jax.numpy as jnp
    import optax

    import jax_impl.optim as O

    ctx = jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()
    with ctx:
        factors = jnp.asarray(np.asarray(case["lr_scale"], np.float64))
        lr = case["lr"]
        kwargs = {}
        if case["scheduled"]:
            learning_rate = lambda count: lr * factors[count]  # noqa: E731
            if float(case["lr_scale"][0]) != 1.0:
                kwargs["base_lr"] = lr
        else:
            learning_rate = lr
        tx = getattr(O, MEMBERS[member][1])(
            learning_rate,
            final_lr=case["final_lr"],
            b1=case["b1"],
            b2=case["b2"],
            gamma=case["gamma"],
            eps=case["eps"],
            weight_decay=case["weight_decay"],
            **kwargs,
            **(options or {}),
        )
        params = jnp.asarray(np.asarray(case["params"]), dtype=dtype)
        state = tx.init(params)

        def step(params, state, g):
            updates, state = tx.update(g, state, params)
            return optax.apply_updates(params, updates), state

        if jit:
            step = jax.jit(step)
        out = []
        for g in np.asarray(case["grads"]):
            params, state = step(params, state, jnp.asarray(g, dtype=dtype))
            out.append(np.asarray(params))
    return np.stack(out)


def _cases():
    from parity.strategies import optimizer_cases

    return optimizer_cases()


def _entry(member: str, name: str | None = None, options: dict | None = None) -> Check:
    return Check(
        name=name or member,
        group="optim",
        cases=_cases,
        run_torch=lambda case: {"trajectory": torch_trajectory(member, case, options=options)},
        run_jax=lambda case: {"trajectory": jax_trajectory(member, case, options=options)},
        atol=1e-10,
        rtol=1e-10,
        reason=(
            "float64 trajectories: the same formulas in the same order, but torch's fused "
            "add(alpha=)/addcmul and XLA's fusion round multiply-adds differently, and jax forms "
            "1-β^t as -expm1(t·log β): a few ulps per step over ≤ 12 steps of steps up to ~1e3"
        ),
        examples=_EXAMPLES,
    )


def _example(shape, steps, *, grad_scale=1.0, seed=0, scheduled=False, lr_scale=None, **hparams):
    rng = np.random.default_rng(seed)
    base = dict(lr=1e-3, final_lr=0.1, b1=0.9, b2=0.999, gamma=1e-3, eps=1e-8, weight_decay=0.0)
    base.update(hparams)
    return dict(
        params=rng.normal(size=shape),
        grads=rng.normal(size=(steps, *shape)) * grad_scale,
        scheduled=scheduled,
        lr_scale=np.ones(steps) if lr_scale is None else np.asarray(lr_scale, np.float64),
        **base,
    )


_EXAMPLES = (
    # the defaults, a scalar parameter
    _example((), 5),
    # huge gradients: every step on the lower bound; tiny ones: on the upper bound
    _example((2, 3), 4, grad_scale=1e3, seed=1, weight_decay=0.1),
    _example((3,), 4, grad_scale=1e-9, seed=2, lr=0.1),
    # γ = 0 (bounds [0, inf): plain Adam), β1 = β2 = 0
    _example((4,), 3, seed=3, gamma=0.0, b1=0.0, b2=0.0, lr=0.01),
    # a schedule that does not start at the base lr and passes through 0
    _example((2, 2), 5, seed=4, scheduled=True, lr_scale=[0.5, 0.0, 1.0, 2.0, 0.25], weight_decay=5e-4),
    # all-zero gradients (m and v stay 0)
    dict(_example((3,), 3, seed=5, weight_decay=0.1), grads=np.zeros((3, 3))),
)

CHECKS: list = [_entry(member) for member in MEMBERS] + [
    _entry(member, name, options) for name, (member, options) in VARIANTS.items()
]
