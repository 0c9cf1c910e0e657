"""What ``twintricks bench`` times, and the helpers the rows are built with: one :class:`Case` per
(row, implementation, size).

Each case knows how to build a ``call(i)`` that does the job once on the ``i``-th input of a
rotating pool (so consecutive calls never see the same array, and the framework draws fresh
random parameters on every call). Building a case imports what it needs; a missing name (a
backend without that function, a library that is not installed) raises :class:`NotAvailable`,
which the runner reports as ``n/a (...)`` instead of failing.

A row is one :class:`Row`: its name, a title, a one-line description of the job (printed in
``bench.md``; the same job for every implementation in the row), the function that builds its
cases and the id of the recipe trick it times. The rows are declared beside each other by family
in :mod:`twintricks_bench.rows` (named like the backend modules), which collects them.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = [
    "Row",
    "NotAvailable",
    "Size",
    "SIZES",
    "TINY_SIZES",
    "Context",
    "Case",
    "IMPLS",
    "OURS",
    "need",
    "torch_compile",
    "torch_grad_call",
    "jax_grad_call",
    "torch_image_call",
    "torch_per_image_call",
    "jax_image_call",
    "ours_torch_module",
    "ours_jax_random",
    "torchvision_v2",
]

#: Columns, in table order: ours first, then the existing implementations.
OURS = ("torch_impl eager", "torch_impl compile", "jax_impl jit")
EXISTING = (
    "torchvision v2 per image",
    "torchvision v2 batch",
    "timm",
    "torch",
    "optax",
)
IMPLS = OURS + EXISTING


class NotAvailable(Exception):
    """This implementation cannot run here (not implemented, library missing, no device)."""


@dataclass(frozen=True)
class Size:
    """An input size to time at: batch and image shape (CIFAR 256×3×32×32, ImageNet 32×3×224×224)."""

    name: str
    batch: int
    height: int
    width: int
    num_classes: int
    policy: str  # AutoAugment policy used at this size


SIZES = {
    "cifar": Size("cifar", 256, 32, 32, 10, "cifar10"),
    "imagenet": Size("imagenet", 32, 224, 224, 1000, "imagenet"),
}
#: Tiny sizes for the test suite (``TWINTRICKS_BENCH_TINY=1`` or ``--tiny``).
TINY_SIZES = {
    "cifar": Size("cifar", 8, 16, 16, 10, "cifar10"),
    "imagenet": Size("imagenet", 4, 40, 40, 20, "imagenet"),
}


@dataclass(frozen=True)
class Case:
    """One timed cell: a row's job done by one implementation in one framework (``trick`` is the
    row's name)."""

    trick: str
    impl: str
    framework: str  # "torch" | "jax"
    build: Callable[[], Callable[[int], Any]]
    same_job: bool = True  # False: does a different (cheaper) job; shown, left out of the ratio
    note: str = ""

    @property
    def ours(self) -> bool:
        return self.impl in OURS


@dataclass(frozen=True)
class Row:
    """One bench row: its name (``--only NAME``; the ``trick`` of its records), its title (how
    ``bench.md`` and ``bench.png`` show it), what its job is (one line for ``bench.md``), the
    function that builds its cases at a :class:`Context`, and ``trick``: the id of the recipe trick
    it times (:data:`twintricks.tricks.TRICKS`; ``None`` for something else, an optimizer)."""

    name: str
    title: str
    doc: str
    cases: Callable[["Context"], list[Case]]
    trick: str | None = None


def need(module: str, name: str):
    """``module.name``, or :class:`NotAvailable` saying what is missing."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise NotAvailable(f"{module.split('.')[0]} not installed ({exc.name})") from None
    try:
        return getattr(mod, name)
    except AttributeError:
        if module.startswith(("torch_impl", "jax_impl")):
            raise NotAvailable(f"not implemented ({module}.{name})") from None
        raise NotAvailable(f"{module}.{name} missing in this version") from None


@dataclass
class Context:
    """Inputs for one size, built lazily and shared by the cases of that size."""

    size: Size
    torch_device: str = "cpu"
    jax_platform: str = "cpu"
    compile_torch: bool = True
    pool: int = 3
    seed: int = 0
    tiny: bool = False  # small optimizer parameter set too (for the test suite)
    _cache: dict = field(default_factory=dict)

    # ---- NumPy sources -------------------------------------------------------------------
    def _np(self, what: str):
        if what in self._cache:
            return self._cache[what]
        s = self.size
        rng = np.random.default_rng(self.seed)
        if what == "images":
            v = [rng.integers(0, 256, (s.batch, s.height, s.width, 3), dtype=np.uint8) for _ in range(self.pool)]
        elif what == "labels":
            v = [rng.integers(0, s.num_classes, (s.batch,)).astype(np.int64) for _ in range(self.pool)]
        elif what == "logits":
            v = [(3 * rng.standard_normal((s.batch, s.num_classes))).astype(np.float32) for _ in range(self.pool)]
        elif what == "teacher":
            rng = np.random.default_rng(self.seed + 1)
            v = [(3 * rng.standard_normal((s.batch, s.num_classes))).astype(np.float32) for _ in range(self.pool)]
        else:  # pragma: no cover - programming error
            raise KeyError(what)
        self._cache[what] = v
        return v

    # ---- torch ---------------------------------------------------------------------------
    def torch(self, what: str):
        key = ("torch", what)
        if key not in self._cache:
            import torch

            dev = torch.device(self.torch_device)
            if what == "images_u8":
                v = [torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(dev) for a in self._np("images")]
            elif what == "images_f32":
                v = [t.float().div_(255) for t in self.torch("images_u8")]
            else:
                v = [torch.from_numpy(a).to(dev) for a in self._np(what)]
            self._cache[key] = v
        return self._cache[key]

    # ---- jax -----------------------------------------------------------------------------
    @functools.cached_property
    def jax_device(self):
        import jax

        try:
            return jax.devices(self.jax_platform)[0]
        except RuntimeError:
            raise NotAvailable(f"jax has no {self.jax_platform} device") from None

    def jax(self, what: str):
        key = ("jax", what)
        if key not in self._cache:
            import jax

            src = self._np("images" if what == "images_u8" else what)
            self._cache[key] = [jax.device_put(a, self.jax_device) for a in src]
        return self._cache[key]

    def jax_keys(self, n: int = 64):
        key = ("jax", "keys", n)
        if key not in self._cache:
            import jax

            keys = jax.random.split(jax.random.key(self.seed), n)
            self._cache[key] = [jax.device_put(k, self.jax_device) for k in keys]
        return self._cache[key]


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def torch_compile(fn):
    import torch

    return torch.compile(fn, dynamic=False)


def torch_grad_call(ctx: Context, loss: Callable, *, teacher: bool = False):
    """call(i): value and gradient of ``loss(logits, [teacher,] labels)`` w.r.t. the logits."""
    import torch

    logits, labels = ctx.torch("logits"), ctx.torch("labels")
    teach = ctx.torch("teacher") if teacher else None
    P = ctx.pool

    def call(i):
        x = logits[i % P].detach().requires_grad_(True)
        args = (x, teach[i % P], labels[i % P]) if teacher else (x, labels[i % P])
        value = loss(*args)
        (g,) = torch.autograd.grad(value, x)
        return g

    return call


def jax_grad_call(ctx: Context, loss: Callable, *, teacher: bool = False):
    import jax

    f = jax.jit(jax.value_and_grad(loss))
    logits, labels = ctx.jax("logits"), ctx.jax("labels")
    teach = ctx.jax("teacher") if teacher else None
    P = ctx.pool

    def call(i):
        if teacher:
            return f(logits[i % P], teach[i % P], labels[i % P])
        return f(logits[i % P], labels[i % P])

    return call


def torch_image_call(ctx: Context, fn, *, with_labels: bool = False, dtype: str = "u8"):
    images = ctx.torch("images_u8" if dtype == "u8" else "images_f32")
    labels = ctx.torch("labels") if with_labels else None
    P = ctx.pool

    if with_labels:
        return lambda i: fn(images[i % P], labels[i % P])
    return lambda i: fn(images[i % P])


def torch_per_image_call(ctx: Context, transform):
    import torch

    images = ctx.torch("images_u8")
    P = ctx.pool

    def call(i):
        return torch.stack([transform(img) for img in images[i % P]])

    return call


def jax_image_call(ctx: Context, fn, *, with_labels: bool = False):
    import jax

    f = jax.jit(fn)
    images = ctx.jax("images_u8")
    labels = ctx.jax("labels") if with_labels else None
    keys = ctx.jax_keys()
    P, K = ctx.pool, len(keys)
    if with_labels:
        return lambda i: f(keys[i % K], images[i % P], labels[i % P])
    return lambda i: f(keys[i % K], images[i % P])


def ours_torch_module(ctx: Context, trick: str, name: str, kwargs: dict, *, compiled_fn=None, with_labels=False,
                      dtype: str = "u8"):
    """The two torch_impl columns: eager = the ``nn.Module`` wrapper (sample + apply per call);
    compile = ``compiled_fn()``, a ``(sample, kernel)`` pair: the sampler runs eagerly (a few
    tiny draws on the generator, which ``torch.compile`` cannot trace) and the kernel runs under
    ``torch.compile`` — exactly how :mod:`torch_impl.train` uses them. ``dtype``: the input
    batches' (``"u8"`` or ``"f32"``, see :func:`torch_image_call`)."""

    def eager():
        return torch_image_call(ctx, need("torch_impl", name)(**kwargs), with_labels=with_labels, dtype=dtype)

    def compiled():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        sample, kernel = compiled_fn()
        kernel = torch_compile(kernel)
        s = ctx.size
        dev = ctx.torch_device
        if with_labels:
            return torch_image_call(
                ctx, lambda x, y: kernel(x, y, sample(s.batch, (s.height, s.width), dev)), with_labels=True, dtype=dtype
            )
        return torch_image_call(ctx, lambda x: kernel(x, sample(s.batch, (s.height, s.width), dev)), dtype=dtype)

    return [
        Case(trick, "torch_impl eager", "torch", eager, note="nn.Module wrapper: sample + apply"),
        Case(
            trick,
            "torch_impl compile",
            "torch",
            compiled,
            note="sampler eager, kernel under torch.compile (as in torch_impl.train)",
        ),
    ]


def ours_jax_random(ctx: Context, trick: str, name: str, kwargs: dict, *, with_labels=False):
    def build():
        fn = functools.partial(need("jax_impl", name), **kwargs)
        return jax_image_call(ctx, fn, with_labels=with_labels)

    return [Case(trick, "jax_impl jit", "jax", build)]


def torchvision_v2():
    """``torchvision.transforms.v2``, or :class:`NotAvailable`."""
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise NotAvailable("torchvision not installed") from None
    return v2
