"""The training-step rows of ``twintricks bench``: the project's own training step, both frameworks.

Each case builds the real :class:`torch_impl.train.Trainer` / :class:`jax_impl.train.Trainer`
(the step ``twintricks train`` runs) on a synthetic CIFAR-size data set made from the bench's
input pool, and times ``Trainer.train_step(images, labels)``: drawing the step's trick
parameters, augmentation, forward, loss, backward and the optimizer update, on uint8 batches
that rotate through the pool. Two recipes:

* ``training step``: the default recipe (``TrainConfig()``: fastnet, SGD with Nesterov momentum
  and weight decay, cosine schedule, no tricks) at batch 256;
* ``training step + tricks``: the same with random resized crop + flip, Cutout (16), mixup
  (α = 1) and label smoothing (0.1) inside the step.

torch: eager (``compile="off"``) and compiled (``compile="on"``: the augmentation + forward +
loss region under ``torch.compile``, as the trainer does on a GPU); jax: the trainer's jitted
step (sampling and the step are two jitted calls in ``train_step``; ``train_epoch`` fuses them).
"""

from __future__ import annotations

import numpy as np

from twintricks_bench.cases import Case, Context, NotAvailable, need

__all__ = ["training_cases", "TRAIN", "TRAIN_TRICKS", "TRAIN_DOCS"]

TRAIN = "training step"
TRAIN_TRICKS = "training step + tricks"
_RECIPES = {
    TRAIN: {},
    TRAIN_TRICKS: dict(crop_flip=True, cutout=16, mixup=1.0, label_smoothing=0.1),
}


def _flags(settings: dict) -> str:
    from twintricks.recipe import OPTIONS

    flag = {o.name: o.cli_flag for o in OPTIONS}
    return " ".join(flag[k] if v is True else f"{flag[k]} {v}" for k, v in settings.items())


#: One line per training row for ``bench.md``.
TRAIN_DOCS = {
    TRAIN: "the project's Trainer.train_step, default recipe (fastnet, SGD with Nesterov momentum, cosine "
    "schedule), uint8 batch in, updated weights out.",
    TRAIN_TRICKS: f"the same with `{_flags(_RECIPES[TRAIN_TRICKS])}` inside the step.",
}


def _dataset(ctx: Context):
    ImageDataset = need("twintricks.datasets", "ImageDataset")
    images = np.concatenate(ctx._np("images"))
    labels = np.concatenate(ctx._np("labels")).astype(np.int32)
    k = ctx.size.num_classes
    return ImageDataset("bench", images, labels, images[:16], labels[:16], tuple(str(i) for i in range(k)))


def _config(ctx: Context, recipe: str, backend: str, compile_mode: str):
    TrainConfig = need("twintricks.recipe", "TrainConfig")
    return TrainConfig(
        backend=backend,
        batch_size=ctx.size.batch,
        progress=False,
        compile=compile_mode,
        seed=ctx.seed,
        **_RECIPES[recipe],
    )


def _torch_step(ctx: Context, recipe: str, *, compiled: bool):
    if compiled and not ctx.compile_torch:
        raise NotAvailable("skipped (torch.compile off)")
    Trainer = need("torch_impl.train", "Trainer")
    trainer = Trainer(_config(ctx, recipe, "torch", "on" if compiled else "off"), _dataset(ctx), device=ctx.torch_device)
    images, labels = ctx.torch("images_u8"), ctx.torch("labels")
    P = ctx.pool
    return lambda i: trainer.train_step(images[i % P], labels[i % P])


def _jax_step(ctx: Context, recipe: str):
    Trainer = need("jax_impl.train", "Trainer")
    trainer = Trainer(_config(ctx, recipe, "jax", "auto"), _dataset(ctx), device=ctx.jax_device)
    images, labels = ctx.jax("images_u8"), ctx.jax("labels")
    P = ctx.pool
    return lambda i: trainer.train_step(images[i % P], labels[i % P])


def training_cases(ctx: Context, recipes=(TRAIN, TRAIN_TRICKS)) -> list[Case]:
    """Cases timing one training step at ``ctx``'s size for each recipe."""
    cases = []
    for r in recipes:
        cases += [
            Case(r, "torch_impl eager", "torch", lambda r=r: _torch_step(ctx, r, compiled=False),
                 note="torch_impl.train.Trainer.train_step, compile='off'"),
            Case(r, "torch_impl compile", "torch", lambda r=r: _torch_step(ctx, r, compiled=True),
                 note="torch_impl.train.Trainer.train_step, compile='on' (augment + forward + loss compiled)"),
            Case(r, "jax_impl jit", "jax", lambda r=r: _jax_step(ctx, r),
                 note="jax_impl.train.Trainer.train_step (jitted sampling, jitted step)"),
        ]
    return cases
