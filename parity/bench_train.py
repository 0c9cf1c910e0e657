"""The training-step rows of ``twintricks bench``: the default model, both frameworks.

One step = uint8 batch → float in [0, 1] → forward (train mode, BatchNorm batch statistics) →
cross-entropy with label smoothing 0.1 → backward → SGD with Nesterov momentum 0.9 and weight
decay 5e-4 → updated weights and BatchNorm running statistics. The same work in both
frameworks, on the default model (``models.create_model()``: fastnet) at CIFAR size.

torch: eager, and the whole step under ``torch.compile`` (forward and backward are compiled by
AOTAutograd; ``optimizer.step`` is compiled as its own graph). jax: the step under ``jax.jit``
with the training state donated. The step is written here from the landed ``models`` modules
so that the benchmark measures the model and the frameworks, not a particular trick mix; the
figure is images/s = batch / step time.
"""

from __future__ import annotations

import functools

from parity.bench_cases import Case, Context, NotAvailable, need

__all__ = ["training_cases", "TRAIN"]

TRAIN = "training step"
_LR, _MOMENTUM, _WD, _EPS = 0.05, 0.9, 5e-4, 0.1
_NOTE = "default model (fastnet), label-smoothed CE, SGD Nesterov + weight decay"


def _torch_step(ctx: Context, *, compiled: bool):
    import torch
    import torch.nn.functional as F

    if compiled and not ctx.compile_torch:
        raise NotAvailable("skipped (torch.compile off)")
    create = need("torch_impl.models", "create_model")
    dev = torch.device(ctx.torch_device)
    torch.manual_seed(ctx.seed)
    model = create(num_classes=ctx.size.num_classes).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=_LR, momentum=_MOMENTUM, nesterov=True, weight_decay=_WD)

    def step(x_u8, y):
        x = x_u8.float().div(255)
        loss = F.cross_entropy(model(x), y, label_smoothing=_EPS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    if compiled:
        step = torch.compile(step, dynamic=False)
    images, labels = ctx.torch("images_u8"), ctx.torch("labels")
    P = ctx.pool
    return lambda i: step(images[i % P], labels[i % P])


def _jax_step(ctx: Context):
    import jax
    import jax.numpy as jnp
    import optax

    create = need("jax_impl.models", "create_model")
    init = need("jax_impl.models", "init_model")
    model = create(num_classes=ctx.size.num_classes)
    s = ctx.size
    variables = init(model, jax.random.key(ctx.seed), (s.height, s.width, 3))
    variables = jax.device_put(variables, ctx.jax_device)
    tx = optax.chain(optax.add_decayed_weights(_WD), optax.sgd(_LR, momentum=_MOMENTUM, nesterov=True))
    state = {"params": variables["params"], "bs": variables.get("batch_stats", {})}
    state["opt"] = tx.init(state["params"])
    k = s.num_classes

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, bs, opt_state, x_u8, y):
        x = x_u8.astype(jnp.float32) / 255

        def loss_fn(p):
            logits, upd = model.apply({"params": p, "batch_stats": bs}, x, train=True, mutable=["batch_stats"])
            targets = optax.smooth_labels(jax.nn.one_hot(y, k), _EPS)
            return optax.softmax_cross_entropy(logits, targets).mean(), upd["batch_stats"]

        (loss, new_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_bs, opt_state, loss

    images, labels = ctx.jax("images_u8"), ctx.jax("labels")
    P = ctx.pool

    def call(i):
        state["params"], state["bs"], state["opt"], loss = step(
            state["params"], state["bs"], state["opt"], images[i % P], labels[i % P]
        )
        return loss, state["params"]

    return call


def training_cases(ctx: Context) -> list[Case]:
    """Cases timing one training step of the default model at ``ctx``'s size."""
    return [
        Case(TRAIN, "torch_impl eager", "torch", lambda: _torch_step(ctx, compiled=False), note=_NOTE),
        Case(TRAIN, "torch_impl compile", "torch", lambda: _torch_step(ctx, compiled=True), note=_NOTE),
        Case(TRAIN, "jax_impl jit", "jax", lambda: _jax_step(ctx), note=_NOTE),
    ]
