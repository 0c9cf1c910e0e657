"""What ``twintricks bench`` times: one :class:`Case` per (trick, implementation, size).

Each case knows how to build a ``call(i)`` that does the job once on the ``i``-th input of a
rotating pool (so consecutive calls never see the same array, and the framework draws fresh
random parameters on every call). Building a case imports what it needs; a missing name (a
backend without that function, a library that is not installed) raises :class:`NotAvailable`,
which the runner reports as ``n/a (...)`` instead of failing.

A row is one :func:`row` entry: the trick's name, a one-line description of the job (printed
in ``bench.md``; the same job for every implementation in the row) and the function that builds
its cases. Adding a trick to the bench is adding one such entry; rows are listed in the order
they are defined.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["Row", "ROWS", "ROW_DOCS", "NotAvailable", "Size", "Context", "Case", "TRICK_NAMES", "IMPLS", "OURS", "cases_for", "row"]

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
    """One timed cell: a trick done by one implementation in one framework."""

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
    """One bench row: a trick, what its job is (one line for ``bench.md``), and its cases."""

    name: str
    doc: str
    cases: Callable[["Context"], list[Case]]


#: The rows by name, in table order (filled by :func:`row`).
ROWS: dict[str, Row] = {}


def row(name: str, doc: str):
    """Register the decorated ``cases(ctx) -> list[Case]`` function as the bench row ``name``."""

    def register(cases: Callable[["Context"], list[Case]]):
        if name in ROWS:
            raise ValueError(f"bench row {name!r} is defined twice")
        ROWS[name] = Row(name, doc, cases)
        return cases

    return register


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


def _torch_compile(fn):
    import torch

    return torch.compile(fn, dynamic=False)


def _torch_grad_call(ctx: Context, loss: Callable, *, teacher: bool = False):
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


def _jax_grad_call(ctx: Context, loss: Callable, *, teacher: bool = False):
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


def _torch_image_call(ctx: Context, fn, *, with_labels: bool = False, dtype: str = "u8"):
    images = ctx.torch("images_u8" if dtype == "u8" else "images_f32")
    labels = ctx.torch("labels") if with_labels else None
    P = ctx.pool

    if with_labels:
        return lambda i: fn(images[i % P], labels[i % P])
    return lambda i: fn(images[i % P])


def _torch_per_image_call(ctx: Context, transform):
    import torch

    images = ctx.torch("images_u8")
    P = ctx.pool

    def call(i):
        return torch.stack([transform(img) for img in images[i % P]])

    return call


def _jax_image_call(ctx: Context, fn, *, with_labels: bool = False):
    import jax

    f = jax.jit(fn)
    images = ctx.jax("images_u8")
    labels = ctx.jax("labels") if with_labels else None
    keys = ctx.jax_keys()
    P, K = ctx.pool, len(keys)
    if with_labels:
        return lambda i: f(keys[i % K], images[i % P], labels[i % P])
    return lambda i: f(keys[i % K], images[i % P])


def _ours_torch_module(ctx: Context, trick: str, name: str, kwargs: dict, *, compiled_fn=None, with_labels=False):
    """The two torch_impl columns: eager = the ``nn.Module`` wrapper (sample + apply per call);
    compile = ``compiled_fn()``, a ``(sample, kernel)`` pair: the sampler runs eagerly (a few
    tiny draws on the generator, which ``torch.compile`` cannot trace) and the kernel runs under
    ``torch.compile`` — exactly how :mod:`torch_impl.train` uses them."""

    def eager():
        return _torch_image_call(ctx, need("torch_impl", name)(**kwargs), with_labels=with_labels)

    def compiled():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        sample, kernel = compiled_fn()
        kernel = _torch_compile(kernel)
        s = ctx.size
        dev = ctx.torch_device
        if with_labels:
            return _torch_image_call(
                ctx, lambda x, y: kernel(x, y, sample(s.batch, (s.height, s.width), dev)), with_labels=True
            )
        return _torch_image_call(ctx, lambda x: kernel(x, sample(s.batch, (s.height, s.width), dev)))

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


def _ours_jax_random(ctx: Context, trick: str, name: str, kwargs: dict, *, with_labels=False):
    def build():
        fn = functools.partial(need("jax_impl", name), **kwargs)
        return _jax_image_call(ctx, fn, with_labels=with_labels)

    return [Case(trick, "jax_impl jit", "jax", build)]


def _tv():
    try:
        from torchvision.transforms import v2
    except ImportError:
        raise NotAvailable("torchvision not installed") from None
    return v2


def _timm(module: str, name: str):
    return need(module, name)


# ------------------------------------------------------------------------------------------
# the rows
# ------------------------------------------------------------------------------------------


@row(
    "label smoothing",
    "cross-entropy against smoothed one-hot targets (ε = 0.1), value and gradient w.r.t. the "
    "logits [N, K] (K = 10 at CIFAR size, 1000 at ImageNet size).",
)
def _label_smoothing(ctx: Context) -> list[Case]:
    eps = 0.1
    t = "label smoothing"

    def ours_eager():
        f = need("torch_impl", "label_smoothing_cross_entropy")
        return _torch_grad_call(ctx, functools.partial(f, smoothing=eps))

    def ours_compile():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        f = need("torch_impl", "label_smoothing_cross_entropy")
        return _torch_grad_call(ctx, _torch_compile(functools.partial(f, smoothing=eps)))

    def ours_jax():
        f = need("jax_impl", "label_smoothing_cross_entropy")
        return _jax_grad_call(ctx, functools.partial(f, smoothing=eps))

    def torch_ce():
        import torch

        return _torch_grad_call(ctx, torch.nn.CrossEntropyLoss(label_smoothing=eps))

    def timm_ls():
        return _torch_grad_call(ctx, _timm("timm.loss", "LabelSmoothingCrossEntropy")(smoothing=eps))

    def optax_ce():
        optax = importlib.import_module("optax")
        import jax

        k = ctx.size.num_classes

        def loss(logits, labels):
            targets = optax.smooth_labels(jax.nn.one_hot(labels, k), eps)
            return optax.softmax_cross_entropy(logits, targets).mean()

        return _jax_grad_call(ctx, loss)

    return [
        Case(t, "torch_impl eager", "torch", ours_eager),
        Case(t, "torch_impl compile", "torch", ours_compile),
        Case(t, "jax_impl jit", "jax", ours_jax),
        Case(t, "torch", "torch", torch_ce, note="nn.CrossEntropyLoss(label_smoothing=0.1)"),
        Case(t, "timm", "torch", timm_ls, note="timm LabelSmoothingCrossEntropy(0.1)"),
        Case(t, "optax", "jax", optax_ce, note="optax.smooth_labels + softmax_cross_entropy, jit"),
    ]


@row(
    "distillation",
    "α·T²·KL(teacher_T ‖ student_T) + (1-α)·CE with T = 4, α = 0.9, value and gradient w.r.t. "
    "the student logits.",
)
def _distillation(ctx: Context) -> list[Case]:
    T, alpha = 4.0, 0.9
    t = "distillation"

    def ours_eager():
        f = need("torch_impl", "kd_loss")
        return _torch_grad_call(ctx, functools.partial(f, temperature=T, alpha=alpha), teacher=True)

    def ours_compile():
        if not ctx.compile_torch:
            raise NotAvailable("skipped (torch.compile off)")
        f = need("torch_impl", "kd_loss")
        return _torch_grad_call(ctx, _torch_compile(functools.partial(f, temperature=T, alpha=alpha)), teacher=True)

    def ours_jax():
        f = need("jax_impl", "kd_loss")
        return _jax_grad_call(ctx, functools.partial(f, temperature=T, alpha=alpha), teacher=True)

    def torch_usual():
        import torch.nn.functional as F

        def loss(s, te, y):
            kl = F.kl_div(F.log_softmax(s / T, -1), F.softmax(te / T, -1), reduction="batchmean")
            return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(s, y)

        return _torch_grad_call(ctx, loss, teacher=True)

    def optax_usual():
        optax = importlib.import_module("optax")
        import jax

        def loss(s, te, y):
            te = jax.lax.stop_gradient(te)
            kl = optax.kl_divergence(jax.nn.log_softmax(s / T), jax.nn.softmax(te / T)).mean()
            ce = optax.softmax_cross_entropy_with_integer_labels(s, y).mean()
            return alpha * T * T * kl + (1 - alpha) * ce

        return _jax_grad_call(ctx, loss, teacher=True)

    return [
        Case(t, "torch_impl eager", "torch", ours_eager),
        Case(t, "torch_impl compile", "torch", ours_compile),
        Case(t, "jax_impl jit", "jax", ours_jax),
        Case(t, "torch", "torch", torch_usual, note="F.kl_div(batchmean)·T² + F.cross_entropy, the usual recipe"),
        Case(t, "optax", "jax", optax_usual, note="optax.kl_divergence + softmax_cross_entropy_with_integer_labels, jit"),
    ]


@row(
    "mixup",
    "one λ ~ Beta(1, 1) per batch and a pairing of the images: mixed images and soft targets.",
)
def _mixup(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "mixup"

    def tv_mixup():
        mix = _tv().MixUp(alpha=1.0, num_classes=k)
        return _torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    def timm_mixup():
        Mixup = _timm("timm.data", "Mixup")
        mix = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, prob=1.0, mode="batch", label_smoothing=0.0, num_classes=k)
        return _torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    return [
        *_ours_torch_module(
            ctx,
            t,
            "Mixup",
            dict(alpha=1.0, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_mixup_params")(n, alpha=1.0, device=dev),
                lambda x, y, p: need("torch_impl", "mixup")(x, y, p, num_classes=k),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_mixup", dict(alpha=1.0, num_classes=k), with_labels=True),
        Case(t, "torchvision v2 batch", "torch", tv_mixup, note="v2.MixUp on float32 input (it rejects uint8)"),
        Case(t, "timm", "torch", timm_mixup, note="timm Mixup(mode='batch'), in place, float32 input"),
    ]


@row(
    "cutout",
    "one square hole of side H/2 per image, each image its own position.",
)
def _cutout(ctx: Context) -> list[Case]:
    s = ctx.size
    length = s.height // 2
    area = (length / s.height) * (length / s.width)
    t = "cutout"

    def erasing():
        return _tv().RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=0)

    return [
        *_ours_torch_module(
            ctx,
            t,
            "Cutout",
            dict(n_holes=1, length=length, fill=0),
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_cutout_params")(n, hw, n_holes=1, device=dev),
                lambda x, p: need("torch_impl", "cutout")(x, p, length=length, fill=0),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_cutout", dict(n_holes=1, length=length, fill=0)),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: _torch_per_image_call(ctx, erasing()),
            note="v2.RandomErasing(p=1, square of area 1/4) image by image",
        ),
        Case(
            t,
            "torchvision v2 batch",
            "torch",
            lambda: _torch_image_call(ctx, erasing()),
            same_job=False,
            note="one hole shared by the whole batch: a cheaper, different job",
        ),
    ]


@row(
    "RICAP",
    "four-patch RICAP (β = 0.3) with its soft targets; no existing implementation to compare with.",
)
def _ricap(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "RICAP"
    return [
        *_ours_torch_module(
            ctx,
            t,
            "RICAP",
            dict(beta=0.3, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_ricap_params")(n, hw, beta=0.3, device=dev),
                lambda x, y, p: need("torch_impl", "ricap")(x, y, p, num_classes=k),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_ricap", dict(beta=0.3, num_classes=k), with_labels=True),
    ]


@row(
    "CutMix",
    "one λ ~ Beta(1, 1) per batch, a box of area ≈ (1-λ)·H·W pasted from the paired image, "
    "soft targets by pixel share (torchvision v2's CutMix job).",
)
def _cutmix(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "CutMix"

    def tv_cutmix():
        return _torch_image_call(ctx, _tv().CutMix(alpha=1.0, num_classes=k), with_labels=True, dtype="f32")

    def timm_cutmix():
        Mixup = _timm("timm.data", "Mixup")
        mix = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, prob=1.0, mode="batch", label_smoothing=0.0, num_classes=k)
        return _torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    return [
        *_ours_torch_module(
            ctx,
            t,
            "CutMix",
            dict(alpha=1.0, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_cutmix_params")(n, hw, alpha=1.0, device=dev),
                lambda x, y, p: need("torch_impl", "cutmix")(x, y, p, num_classes=k),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_cutmix", dict(alpha=1.0, num_classes=k), with_labels=True),
        Case(t, "torchvision v2 batch", "torch", tv_cutmix, note="v2.CutMix on float32 input (it rejects uint8)"),
        Case(t, "timm", "torch", timm_cutmix, note="timm Mixup(cutmix_alpha=1, mode='batch'), in place, float32 input"),
    ]


@row(
    "mixup/CutMix switch",
    "timm's Mixup(mixup_alpha=1, cutmix_alpha=1, switch_prob=0.5, mode='batch', label_smoothing=0.1): "
    "per batch mixup or CutMix, smoothed soft targets.",
)
def _mixup_cutmix(ctx: Context) -> list[Case]:
    k = ctx.size.num_classes
    t = "mixup/CutMix switch"
    kw = dict(mixup_alpha=1.0, cutmix_alpha=1.0)

    def timm_switch():
        Mixup = _timm("timm.data", "Mixup")
        mix = Mixup(**kw, prob=1.0, switch_prob=0.5, mode="batch", label_smoothing=0.1, num_classes=k)
        return _torch_image_call(ctx, mix, with_labels=True, dtype="f32")

    return [
        *_ours_torch_module(
            ctx,
            t,
            "MixupCutmix",
            dict(**kw, label_smoothing=0.1, num_classes=k),
            with_labels=True,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_mixup_cutmix_params")(n, hw, **kw, device=dev),
                lambda x, y, p: need("torch_impl", "mixup_cutmix")(x, y, p, num_classes=k, label_smoothing=0.1),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_mixup_cutmix", dict(**kw, label_smoothing=0.1, num_classes=k), with_labels=True),
        Case(t, "timm", "torch", timm_switch, note="timm Mixup, in place, float32 input"),
    ]


@row(
    "random erasing",
    "one box per image (p = 1), area 2-33% of the image, aspect 0.3-3.3, fill 0; each image its own box.",
)
def _random_erasing(ctx: Context) -> list[Case]:
    kw = dict(p=1.0, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0)
    t = "random erasing"

    def timm_erasing():
        RandomErasing = _timm("timm.data.random_erasing", "RandomErasing")
        re = RandomErasing(probability=1.0, min_area=0.02, max_area=0.33, min_aspect=0.3, max_aspect=3.3,
                           mode="const", device=ctx.torch_device)
        return _torch_image_call(ctx, re)

    return [
        *_ours_torch_module(
            ctx,
            t,
            "RandomErasing",
            kw,
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_random_erasing_params")(n, hw, 3, **kw, device=dev),
                lambda x, p: need("torch_impl", "erase")(x, p),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_erasing", kw),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: _torch_per_image_call(ctx, _tv().RandomErasing(**kw)),
            note="v2.RandomErasing image by image: the only way it gives each image its own box",
        ),
        Case(t, "timm", "torch", timm_erasing, note="timm RandomErasing(mode='const') on the batch: a box per image, in place"),
    ]


@row(
    "resized crop + flip",
    "a RandomResizedCrop box per image resized back to the input size (bilinear, no "
    "antialiasing), then a random horizontal flip.",
)
def _crop_flip(ctx: Context) -> list[Case]:
    s = ctx.size
    t = "resized crop + flip"

    def tv_per_image():
        v2 = _tv()
        tr = v2.Compose([v2.RandomResizedCrop((s.height, s.width), antialias=False), v2.RandomHorizontalFlip()])
        return _torch_per_image_call(ctx, tr)

    return [
        *_ours_torch_module(
            ctx,
            t,
            "RandomResizedCropFlip",
            dict(size=(s.height, s.width)),
            compiled_fn=lambda: (
                lambda n, hw, dev: (
                    need("torch_impl", "sample_resized_crop_params")(n, hw, device=dev),
                    need("torch_impl", "sample_flip_params")(n, device=dev),
                ),
                lambda x, p: need("torch_impl", "resized_crop")(x, p[0], size=(s.height, s.width), flip=p[1]),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_resized_crop_flip", dict(size=(s.height, s.width))),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            tv_per_image,
            note="v2.RandomResizedCrop(antialias=False) + RandomHorizontalFlip image by image",
        ),
    ]


@row(
    "AutoAugment",
    "the CIFAR10 policy at CIFAR size, the ImageNet policy at ImageNet size; each image its "
    "own sub-policy.",
)
def _autoaugment(ctx: Context) -> list[Case]:
    policy = ctx.size.policy
    t = "AutoAugment"

    def tv_aa():
        v2 = _tv()
        from torchvision.transforms import AutoAugmentPolicy

        return v2.AutoAugment(AutoAugmentPolicy(policy))

    return [
        *_ours_torch_module(
            ctx,
            t,
            "AutoAugment",
            dict(policy=policy),
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", "sample_autoaugment_params")(n, policy=policy, device=dev),
                lambda x, p: need("torch_impl", "autoaugment")(x, p, policy=policy),
            ),
        ),
        *_ours_jax_random(ctx, t, "random_autoaugment", dict(policy=policy)),
        Case(
            t,
            "torchvision v2 per image",
            "torch",
            lambda: _torch_per_image_call(ctx, tv_aa()),
            note="v2.AutoAugment image by image: the only way it gives each image its own draw",
        ),
        Case(
            t,
            "torchvision v2 batch",
            "torch",
            lambda: _torch_image_call(ctx, tv_aa()),
            same_job=False,
            note="one sub-policy for the whole batch: a cheaper, different job",
        ),
    ]



def _policy_family_cases(ctx: Context, trick: str, module: str, family: str, tv_transform) -> list[Case]:
    """Ours (torch module, torch compile, jax) against torchvision v2's transform image by image
    (the only way it gives each image its own draws) and on the whole batch (one draw for all)."""
    return [
        *_ours_torch_module(
            ctx,
            trick,
            module,
            {},
            compiled_fn=lambda: (
                lambda n, hw, dev: need("torch_impl", f"sample_{family}_params")(n, device=dev),
                lambda x, p: need("torch_impl", family)(x, p),
            ),
        ),
        *_ours_jax_random(ctx, trick, f"random_{family}", {}),
        Case(
            trick,
            "torchvision v2 per image",
            "torch",
            lambda: _torch_per_image_call(ctx, tv_transform()),
            note=f"v2.{module} image by image: the only way it gives each image its own draws",
        ),
        Case(
            trick,
            "torchvision v2 batch",
            "torch",
            lambda: _torch_image_call(ctx, tv_transform()),
            same_job=False,
            note="one draw for the whole batch: a cheaper, different job",
        ),
    ]


@row("RandAugment", "torchvision v2's defaults (2 ops, bin 9 of 31); each image its own ops and signs.")
def _randaugment(ctx: Context) -> list[Case]:
    return _policy_family_cases(ctx, "RandAugment", "RandAugment", "randaugment", lambda: _tv().RandAugment())


@row("TrivialAugmentWide", "torchvision v2's defaults (31 bins); each image its own op, bin and sign.")
def _trivialaugment_wide(ctx: Context) -> list[Case]:
    return _policy_family_cases(
        ctx, "TrivialAugmentWide", "TrivialAugmentWide", "trivialaugment_wide", lambda: _tv().TrivialAugmentWide()
    )


@row(
    "AugMix",
    "torchvision v2's defaults (severity 3, 3 chains of 1..3 ops, α = 1) with nearest interpolation; "
    "each image its own chains and weights.",
)
def _augmix(ctx: Context) -> list[Case]:
    def tv_augmix():
        v2 = _tv()
        return v2.AugMix(interpolation=v2.InterpolationMode.NEAREST)

    return _policy_family_cases(ctx, "AugMix", "AugMix", "augmix", tv_augmix)

def _param_shapes(ctx: Context) -> list[tuple[int, ...]]:
    if ctx.tiny:
        return [(16, 3, 3, 3), (16,), (16,), (10, 16), (10,)]
    try:
        from torchvision.models import resnet18
    except ImportError:
        raise NotAvailable("torchvision not installed") from None
    return [tuple(p.shape) for p in resnet18(num_classes=1000).parameters()]


@row(
    "AdaBound",
    "one optimizer update of 11.7M parameters in 62 tensors (torchvision ResNet-18 shapes); "
    "Adam is the cost floor. Shown as batch / seconds per update.",
)
def _adabound(ctx: Context) -> list[Case]:
    t = "AdaBound"
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


#: Row names, in table order.
TRICK_NAMES: tuple[str, ...] = tuple(ROWS)
#: One line per row for ``bench.md``.
ROW_DOCS: dict[str, str] = {r.name: r.doc for r in ROWS.values()}


def cases_for(ctx: Context, tricks) -> list[Case]:
    """Every case of the given rows at ``ctx``'s size, in table order."""
    out: list[Case] = []
    for name in tricks:
        out.extend(ROWS[name].cases(ctx))
    return out
