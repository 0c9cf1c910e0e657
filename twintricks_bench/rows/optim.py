"""The bench rows of AdaBound, against Adam (its cost floor) (``ROWS``; see :mod:`twintricks_bench.rows`)."""

from __future__ import annotations

import functools
import importlib

import numpy as np

from twintricks_bench.cases import Case, Context, NotAvailable, Row, need

__all__ = ["ROWS"]


def _param_shapes(ctx: Context) -> list[tuple[int, ...]]:
    if ctx.tiny:
        return [(16, 3, 3, 3), (16,), (16,), (10, 16), (10,)]
    try:
        from torchvision.models import resnet18
    except ImportError:
        raise NotAvailable("torchvision not installed") from None
    return [tuple(p.shape) for p in resnet18(num_classes=1000).parameters()]


def _adabound(ctx: Context) -> list[Case]:
    t = "adabound"
    P = ctx.pool

    def torch_params_and_grads():
        import torch

        shapes = _param_shapes(ctx)
        gen = torch.Generator().manual_seed(ctx.seed)
        dev = torch.device(ctx.torch_device)
        params = [torch.zeros(sh, device=dev, requires_grad=True) for sh in shapes]
        grads = [[torch.randn(sh, generator=gen).to(dev) for sh in shapes] for _ in range(P)]
        return params, grads

    def torch_opt(make):
        params, grads = torch_params_and_grads()
        opt = make(params)
        step = opt.step

        def call(i):
            for p, g in zip(params, grads[i % P]):
                p.grad = g
            step()
            return params[-1]

        return call

    def jax_opt(make):
        import jax
        import jax.numpy as jnp

        optax = importlib.import_module("optax")
        shapes = _param_shapes(ctx)
        dev = ctx.jax_device
        rng = np.random.default_rng(ctx.seed)
        params = [jax.device_put(jnp.zeros(sh, jnp.float32), dev) for sh in shapes]
        grads = [[jax.device_put(rng.standard_normal(sh, dtype=np.float32), dev) for sh in shapes] for _ in range(P)]
        tx = make()
        state = {"p": params, "s": tx.init(params)}

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(p, s, g):
            u, s = tx.update(g, s, p)
            return optax.apply_updates(p, u), s

        def call(i):
            state["p"], state["s"] = step(state["p"], state["s"], grads[i % P])
            return state["p"][-1]

        return call

    def ours_eager():
        return torch_opt(lambda ps: need("torch_impl", "AdaBound")(ps, lr=1e-3))

    def ours_compile():
        # The training step runs the optimizer eagerly (torch_impl.train), and compiling the update
        # of 62 tensors took over four minutes on the 2-core CPU: not part of the bench.
        raise NotAvailable("skipped (optimizer runs eagerly in the training step)")

    def ours_jax():
        return jax_opt(lambda: need("jax_impl", "adabound")(1e-3))

    def torch_adam():
        import torch

        return torch_opt(lambda ps: torch.optim.Adam(ps, lr=1e-3))

    def optax_adam():
        return jax_opt(lambda: importlib.import_module("optax").adam(1e-3))

    floor = "cost floor, not the same algorithm: Adam does the same moments without the bounds"
    return [
        Case(t, "torch_impl eager", "torch", ours_eager),
        Case(t, "torch_impl compile", "torch", ours_compile),
        Case(t, "jax_impl jit", "jax", ours_jax),
        Case(t, "torch", "torch", torch_adam, note="torch.optim.Adam, default settings; " + floor),
        Case(t, "optax", "jax", optax_adam, note="optax.adam, jit; " + floor),
    ]


ROWS = [
    Row(
        "adabound",
        "AdaBound",
        "one optimizer update of 11.7M parameters in 62 tensors (torchvision ResNet-18 shapes); Adam "
        "is the cost floor. Shown as batch / seconds per update.",
        _adabound,
        trick=None,
    ),
]
