"""A reproducible bad-input and fault audit of twintricks' public API and command line.

    python benchmarks/audit.py [--area torch|jax|parity|files|cli] [--out benchmarks/audit.json]

Every public function, module and option is called once with valid, small inputs (the baseline,
which must pass), then once per bad value of each argument: the bad values are generated from
the argument's *kind* (an image batch, labels, a probability, a positive int, a params record...)
— wrong type, wrong dtype, wrong rank/shape, empty, NaN, inf, negative, out of range,
non-contiguous, attributes set after construction — not listed by hand. Each call is classified:

* ``OK``: a ``ValueError``/``TypeError`` (or a subclass: ``CheckpointError``, ``BadImageError``,
  ``ConversionError``, ``ParityError``) whose message names the argument (or field, file, flag), or
  a CLI exit with a one-line message and a non-zero status; a *valid variant* (empty batch,
  non-contiguous input) that returns the same result as the contiguous one also counts as OK;
* ``OBSCURE``: any other exception, or one whose message does not name the argument (or runs
  over 1,000 characters);
* ``SILENT``: returned without error on bad input;
* ``DESIGN``: silent by a documented design choice (:data:`DESIGN`, each with where it is written);
* ``RAW``: a command-line call that let an exception escape (a traceback on stderr).

Small inputs (4 images of 8x8), so the whole audit runs in a few minutes on two busy cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

N, C, H, W, K = 4, 3, 8, 8, 5
VERDICTS = ("OK", "OBSCURE", "SILENT", "DESIGN", "RAW")

#: Silent by design: (area, target regex, argument regex, case regex) -> where it is documented.
DESIGN = [
    ("torch|jax", r"mix|ricap|cutmix|Mixup|RICAP|CutMix", r"^images$", r"nan|inf",
     "torch_impl/mixing/__init__.py, jax_impl/mixing/__init__.py (module docstrings): float images are not "
     "checked for NaN/inf; the kernels propagate them as torchvision's MixUp/CutMix and timm's Mixup do"),
    ("torch|jax", r"mix|ricap|cutmix|Mixup|RICAP|CutMix", r"^(targets|labels)$", r"soft_",
     "torch_impl/mixing/__init__.py, jax_impl/mixing/__init__.py: soft targets given to a mixing kernel are "
     "not checked (the losses check theirs)"),
    ("torch|jax", r"cutout|erase|Cutout|RandomErasing|random_erasing", r"^images$", r"nan|inf",
     "torch_impl/erasing.py, jax_impl/erasing.py (module docstrings): NaN/inf propagate as torchvision's erase"),
    ("torch|jax", r"resized_crop|hflip|RandomResizedCropFlip", r"^images$", r"nan|inf",
     "torch_impl/cropping.py, jax_impl/cropping.py (module docstrings): NaN/inf propagate as torchvision's "
     "resized_crop and hflip"),
    ("cli", r"train", r"--resume", r"no-run",
     "twintricks/recipe.py (fit's docstring): with resume, a run starts from scratch if there is no checkpoint "
     "(so the same command line starts and continues a run)"),
    ("torch|jax", r"cross_entropy|distillation|kd_loss|CrossEntropy|DistillationLoss", r"logits", r"nan|inf",
     "torch_impl/losses.py, jax_impl/losses.py (module docstrings): logits are not checked for NaN/inf "
     "(-inf masks a class, NaN propagates as in F.cross_entropy / optax)"),
]


class Audit:
    """Collects the classified calls."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, area, target, arg, case, verdict, detail=""):
        self.rows.append(dict(area=area, target=target, arg=arg, case=case, verdict=verdict, detail=detail[:300]))

    def design(self, area, target, arg, case):
        for areas, t, a, c, doc in DESIGN:
            if re.search(areas, area) and re.search(t, target) and re.search(a, arg) and re.search(c, case):
                return doc
        return None


AUDIT = Audit()


def _names_in(msg: str, names) -> bool:
    low = msg.lower()
    return any(n.lower() in low for n in names if n)


def judge_exception(exc: BaseException, names) -> tuple[str, str]:
    msg = f"{type(exc).__name__}: {exc}"
    # ImportError: load_checks of a module that is not there, named (Python's own error for it)
    if isinstance(exc, (ValueError, TypeError, ImportError)) and _names_in(str(exc), names) and len(str(exc)) <= 1000:
        return "OK", msg
    return "OBSCURE", msg


# ----------------------------------------------------------------------------------------------
# bad values, by kind


class Bad:
    """One bad (``must=True``) or valid-variant (``must=False``) value of an argument."""

    def __init__(self, case, value, must=True, same=False):
        self.case, self.value, self.must, self.same = case, value, must, same


def scalar_bad(kind):
    """Bad values of a scalar argument, by kind."""
    common_real = [Bad("str", "1"), Bad("list", [1.0]), Bad("nan", float("nan")), Bad("inf", float("inf"))]
    table = {
        "prob": common_real + [Bad("negative", -0.1), Bad("above_1", 1.5), Bad("none", None)],
        "pos_real": common_real + [Bad("zero", 0.0), Bad("negative", -1.0), Bad("none", None)],
        "nonneg_real": common_real + [Bad("negative", -1.0), Bad("none", None)],
        "real": common_real + [Bad("none", None)],
        "fill": [Bad("str", "x"), Bad("nan", float("nan")), Bad("inf", float("inf")), Bad("too_long", [0.0] * 7)],
        "pos_int": [Bad("zero", 0), Bad("negative", -1), Bad("float", 1.5), Bad("str", "2"), Bad("nan", float("nan")),
                    Bad("none", None)],
        "batch": [Bad("zero", 0, must=False), Bad("negative", -1), Bad("float", 1.5), Bad("str", "2"),
                  Bad("nan", float("nan")), Bad("none", None)],
        "nonneg_int": [Bad("negative", -1), Bad("float", 1.5), Bad("str", "2"), Bad("nan", float("nan")),
                       Bad("none", None)],
        "int": [Bad("float", 1.5), Bad("str", "2"), Bad("none", None)],
        "choice": [Bad("unknown", "bogus"), Bad("int", 3), Bad("none", None)],
        "opt_choice": [Bad("unknown", "bogus"), Bad("int", 3)],
        "bool": [Bad("str", "yes"), Bad("int2", 2)],
        "size2": [Bad("zero", (0, W)), Bad("negative", (-1, W)), Bad("one_elem", (H,)), Bad("float", (8.5, 8)),
                  Bad("str", "8"), Bad("three", (H, W, 1))],
        "crop_scale": [Bad("reversed", (0.9, 0.1)), Bad("negative", (-0.1, 0.5)), Bad("above_1", (0.5, 1.5), must=False),
                       Bad("nan", (float("nan"), 0.5)), Bad("one_elem", (0.5,)), Bad("str", "x")],
        "unit_range": [Bad("reversed", (0.9, 0.1)), Bad("negative", (-0.1, 0.5)), Bad("above_1", (0.5, 1.5)),
                       Bad("nan", (float("nan"), 0.5)), Bad("one_elem", (0.5,)), Bad("str", "x")],
        "pos_range": [Bad("reversed", (2.0, 0.5)), Bad("zero", (0.0, 1.0)), Bad("negative", (-1.0, 1.0)),
                      Bad("nan", (float("nan"), 1.0)), Bad("one_elem", (0.5,)), Bad("str", "x")],
        "betas": [Bad("above_1", (1.5, 0.999)), Bad("negative", (-0.1, 0.999)), Bad("nan", (float("nan"), 0.9)),
                  Bad("one_elem", (0.9,)), Bad("str", "x")],
        "opt_pos_int": [Bad("zero", 0), Bad("negative", -1), Bad("float", 1.5), Bad("str", "2")],
        "opt_unit_range": [Bad("reversed", (0.9, 0.1)), Bad("negative", (-0.1, 0.5)), Bad("above_1", (0.5, 1.5)),
                           Bad("nan", (float("nan"), 0.5)), Bad("str", "x")],
        "path": [Bad("missing", "/nonexistent/audit/file"), Bad("folder", "/"), Bad("int", 3)],
    }
    return table[kind]


#: cases that are a mismatch between arguments, not a bad value of one
MISMATCH = {"empty_batch", "rank1_mismatch", "wrong_n", "wrong_length", "empty"}


def run_case(area, target, fn, args: dict, arg: str, bad: Bad, names=None, baseline=None, compare=None):
    vals = {n: (bad.value if n == arg else f()) for n, (f, _k) in args.items()}
    if arg not in args and not arg.startswith("__"):
        vals[arg] = bad.value
    names = tuple(names or (arg,))
    if bad.case in MISMATCH:  # a mismatch between two arguments may name either
        names += tuple(args)
    design = AUDIT.design(area, target, arg, bad.case)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(**vals)
            out = _materialise(out)
    except Exception as exc:  # noqa: BLE001 - every exception is classified
        v, msg = judge_exception(exc, names)
        AUDIT.add(area, target, arg, bad.case, v, msg)
        return
    if not bad.must:
        if bad.same and compare is not None and baseline is not None and not compare(out, baseline):
            AUDIT.add(area, target, arg, bad.case, "SILENT", "a valid variant gave another result")
        else:
            AUDIT.add(area, target, arg, bad.case, "OK", "valid variant accepted")
        return
    if design:
        AUDIT.add(area, target, arg, bad.case, "DESIGN", design)
    else:
        AUDIT.add(area, target, arg, bad.case, "SILENT", _describe(out))


def _materialise(out):
    """Force lazy results (jax dispatch) so errors surface inside the call."""
    leaves = out if isinstance(out, (tuple, list)) else [out]
    for x in leaves:
        if hasattr(x, "block_until_ready"):
            x.block_until_ready()
    return out


def _describe(out) -> str:
    leaves = out if isinstance(out, (tuple, list)) else [out]
    parts = []
    for x in leaves:
        try:
            a = np.asarray(x, dtype=np.float64)
            parts.append(f"shape {a.shape} finite {bool(np.isfinite(a).all())}")
        except Exception:  # noqa: BLE001
            parts.append(type(x).__name__)
    return "returned " + "; ".join(parts)


def _np(out):
    leaves = out if isinstance(out, (tuple, list)) else [out]
    return [np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64) for x in leaves]


def same_result(a, b) -> bool:
    try:
        return all(np.array_equal(x, y, equal_nan=True) for x, y in zip(_np(a), _np(b)))
    except Exception:  # noqa: BLE001
        return False


def audit_fn(area, target, fn, args: dict, extra_bad=None, names=None, valid=None):
    """Baseline call, then every bad value of every argument (``args``: name -> (factory, kind))."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            baseline = _materialise(fn(**{n: f() for n, (f, _k) in args.items()}))
    except Exception as exc:  # noqa: BLE001
        AUDIT.add(area, target, "-", "baseline", "OBSCURE", f"HARNESS baseline failed: {type(exc).__name__}: {exc}")
        return
    for arg, (factory, kind) in args.items():
        bads = kind(factory()) if callable(kind) else scalar_bad(kind)
        for bad in bads:
            if bad.case in (valid or {}).get(arg, ()):  # a value this function accepts by its documentation
                bad = Bad(bad.case, bad.value, must=False)
            run_case(area, target, fn, args, arg, bad, names=(names or {}).get(arg, (arg,)), baseline=baseline,
                     compare=same_result)
    for arg, bad in (extra_bad or []):
        run_case(area, target, fn, args, arg, bad, names=(names or {}).get(arg, (arg,)), baseline=baseline,
                 compare=same_result)


# ----------------------------------------------------------------------------------------------
# backends


class TorchB:
    area = "torch"

    def __init__(self):
        import torch

        import torch_impl

        torch.set_num_threads(1)
        self.torch, self.m = torch, torch_impl

    def rng(self):
        return self.torch.Generator().manual_seed(0)

    rand_name = "generator"

    def rand_kind(self, good):
        return [Bad("str", "seed"), Bad("int", 5)]

    def images(self, dtype="uint8"):
        t = self.torch
        g = t.Generator().manual_seed(1)
        x = t.randint(0, 256, (N, C, H, W), generator=g, dtype=t.uint8)
        return x if dtype == "uint8" else x.float() / 255

    def labels(self, k=K):
        return self.torch.tensor([0, 1, 2, 3])[:N] % k

    def soft(self):
        return self.torch.full((N, K), 1.0 / K)

    def logits(self):
        g = self.torch.Generator().manual_seed(2)
        return self.torch.randn(N, K, generator=g)

    def image_bad(self, good):
        t = self.torch
        f = good.float() / 255 if good.dtype == t.uint8 else good
        out = [Bad("list", good.tolist()), Bad("numpy", good.numpy()), Bad("int64", good.to(t.int64)),
               Bad("bool", good.bool()), Bad("rank3", good[0]), Bad("rank5", good[None]),
               Bad("channels_last_shape", good.permute(0, 2, 3, 1).contiguous()),
               Bad("empty_batch", good[:0], must=False),
               Bad("noncontiguous", t.stack([good, good], 4)[..., 0], must=False, same=True),
               Bad("channels_last_memory", good.contiguous(memory_format=t.channels_last), must=False, same=True)]
        for case, val in (("nan", float("nan")), ("inf", float("inf")), ("above_1", 2.0), ("negative", -1.0)):
            x = f.clone()
            x[0, 0, 0, 0] = val
            out.append(Bad(f"float_{case}", x, must=case in ("nan", "inf")))
        return out

    def labels_bad(self, good):
        return [Bad("list", good.tolist()), Bad("float", good.float()), Bad("out_of_range", good + K),
                Bad("negative", good - 10), Bad("rank2_int", good[:, None]), Bad("wrong_length", good[:-1]),
                Bad("empty", good[:0])]

    def targets_bad(self, good):
        t = self.torch
        s = self.soft()
        bad = self.labels_bad(good)
        nan = s.clone()
        nan[0, 0] = float("nan")
        neg = s.clone()
        neg[0, 0] = -0.5
        neg[0, 1] += 0.5
        return bad + [Bad("soft_nan", nan), Bad("soft_negative", neg), Bad("soft_sum_2", s * 2),
                      Bad("soft_wrong_k", t.full((N, K + 1), 1.0 / (K + 1)))]

    def soft_bad(self, good):
        t = self.torch
        nan = good.clone()
        nan[0, 0] = float("nan")
        neg = good.clone()
        neg[0, 0] = -0.5
        neg[0, 1] += 0.5
        return [Bad("list", good.tolist()), Bad("int", good.long()), Bad("soft_nan", nan), Bad("soft_negative", neg),
                Bad("soft_sum_2", good * 2), Bad("wrong_k", t.full((N, K + 1), 1.0 / (K + 1))),
                Bad("wrong_n", good[:-1])]

    def logits_bad(self, good):
        nan = good.clone()
        nan[0, 0] = float("nan")
        inf = good.clone()
        inf[0, 0] = float("inf")
        return [Bad("list", good.tolist()), Bad("int", good.long()), Bad("rank1_mismatch", good[0]),
                Bad("wrong_n", good[:-1]), Bad("nan", nan), Bad("inf", inf), Bad("empty", good[:0], must=False)]

    def record_bad(self, good):
        """Bad params records: a dict, and per field wrong dtype, batch, rank and values."""
        t = self.torch
        out = [Bad("dict", good._asdict()), Bad("tuple", tuple(good), must=False)]
        for f in good._fields:
            v = getattr(good, f)
            if not isinstance(v, t.Tensor):
                continue

            def rep(x, f=f):
                return good._replace(**{f: x})

            if v.dtype == t.bool:  # 0/1 numbers for a flag are read as the flag (the same draw): not garbage
                out.append(Bad(f"{f}:float", rep(v.float()), must=False))
            elif v.is_floating_point():
                out.append(Bad(f"{f}:int", rep(v.long())))
                for case, val in (("nan", float("nan")), ("inf", float("inf"))) + (
                        () if f == "fill" else (("negative", -1.0), ("above_1", 2.0))):
                    x = v.clone()
                    x.view(-1)[0] = val
                    out.append(Bad(f"{f}:{case}", rep(x)))
            else:
                out.append(Bad(f"{f}:float", rep(v.float())))
                for case, val in (("negative", -1), ("huge", 10**6)):
                    out.append(Bad(f"{f}:{case}", rep(t.full_like(v, val))))
            if v.ndim:
                out.append(Bad(f"{f}:batch+1", rep(t.cat([v, v[:1]]))))
                out.append(Bad(f"{f}:list", rep(v.tolist())))
        return out


class JaxB:
    area = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp

        import jax_impl

        self.jax, self.jnp, self.m = jax, jnp, jax_impl

    def rng(self):
        return self.jax.random.key(0)

    rand_name = "key"

    def rand_kind(self, good):
        return [Bad("int", 5), Bad("str", "key"), Bad("float_array", self.jnp.zeros((2,), self.jnp.float32))]

    def images(self, dtype="uint8"):
        x = np.random.default_rng(1).integers(0, 256, (N, H, W, C), dtype=np.uint8)
        return self.jnp.asarray(x if dtype == "uint8" else x.astype(np.float32) / 255)

    def labels(self, k=K):
        return self.jnp.asarray(np.arange(N) % k)

    def soft(self):
        return self.jnp.full((N, K), 1.0 / K)

    def logits(self):
        return self.jnp.asarray(np.random.default_rng(2).standard_normal((N, K)).astype(np.float32))

    def image_bad(self, good):
        jnp = self.jnp
        f = good.astype(jnp.float32) / 255 if good.dtype == jnp.uint8 else good
        out = [Bad("list", np.asarray(good).tolist()), Bad("numpy", np.asarray(good), must=False, same=True),
               Bad("int32", good.astype(jnp.int32)), Bad("bool", good.astype(bool)), Bad("rank3", good[0]),
               Bad("rank5", good[None]), Bad("channels_first_shape", jnp.transpose(good, (0, 3, 1, 2))),
               Bad("empty_batch", good[:0], must=False)]
        for case, val in (("nan", float("nan")), ("inf", float("inf")), ("above_1", 2.0), ("negative", -1.0)):
            out.append(Bad(f"float_{case}", f.at[0, 0, 0, 0].set(val), must=case in ("nan", "inf")))
        return out

    def labels_bad(self, good):
        return [Bad("list", np.asarray(good).tolist()), Bad("float", good.astype(self.jnp.float32)),
                Bad("out_of_range", good + K), Bad("negative", good - 10), Bad("rank2_int", good[:, None]),
                Bad("wrong_length", good[:-1]), Bad("empty", good[:0])]

    def targets_bad(self, good):
        s = self.soft()
        return self.labels_bad(good) + [
            Bad("soft_nan", s.at[0, 0].set(float("nan"))), Bad("soft_negative", s.at[0, 0].set(-0.5).at[0, 1].add(0.5)),
            Bad("soft_sum_2", s * 2), Bad("soft_wrong_k", self.jnp.full((N, K + 1), 1.0 / (K + 1)))]

    def soft_bad(self, good):
        jnp = self.jnp
        return [Bad("list", np.asarray(good).tolist()), Bad("int", good.astype(jnp.int32)),
                Bad("soft_nan", good.at[0, 0].set(float("nan"))),
                Bad("soft_negative", good.at[0, 0].set(-0.5).at[0, 1].add(0.5)), Bad("soft_sum_2", good * 2),
                Bad("wrong_k", jnp.full((N, K + 1), 1.0 / (K + 1))), Bad("wrong_n", good[:-1])]

    def logits_bad(self, good):
        return [Bad("list", np.asarray(good).tolist()), Bad("int", good.astype(self.jnp.int32)),
                Bad("rank1_mismatch", good[0]), Bad("wrong_n", good[:-1]), Bad("nan", good.at[0, 0].set(float("nan"))),
                Bad("inf", good.at[0, 0].set(float("inf"))), Bad("empty", good[:0], must=False)]

    def record_bad(self, good):
        jnp = self.jnp
        out = [Bad("dict", good._asdict()), Bad("tuple", tuple(good), must=False)]
        for f in good._fields:
            v = getattr(good, f)
            if not hasattr(v, "dtype"):
                continue

            def rep(x, f=f):
                return good._replace(**{f: x})

            if v.dtype == jnp.bool_:  # read as the flag, as jnp.asarray(x, bool) does
                out.append(Bad(f"{f}:float", rep(v.astype(jnp.float32)), must=False))
            elif jnp.issubdtype(v.dtype, jnp.floating):
                out.append(Bad(f"{f}:int", rep(v.astype(jnp.int32))))
                for case, val in (("nan", float("nan")), ("inf", float("inf"))) + (
                        () if f == "fill" else (("negative", -1.0), ("above_1", 2.0))):
                    out.append(Bad(f"{f}:{case}", rep(v.reshape(-1).at[0].set(val).reshape(v.shape))))
            else:
                out.append(Bad(f"{f}:float", rep(v.astype(jnp.float32))))
                for case, val in (("negative", -1), ("huge", 10**6)):
                    out.append(Bad(f"{f}:{case}", rep(jnp.full_like(v, val))))
            if v.ndim:
                out.append(Bad(f"{f}:batch+1", rep(jnp.concatenate([v, v[:1]]))))
                out.append(Bad(f"{f}:list", rep(np.asarray(v).tolist())))
        return out


def const(v):
    return lambda: v


def audit_backend(B):
    """The tricks' public API of one backend (the same specs for both; torch modules, jax random_*)."""
    m, area, torch = B.m, B.area, B.area == "torch"
    imgs = B.images
    RB = (B.rng, B.rand_kind)
    ims_u8 = (lambda: imgs("uint8"), B.image_bad)
    ims_f = (lambda: imgs("float32"), B.image_bad)
    lab = (B.labels, B.labels_bad)
    tgt = (B.labels, B.targets_bad)
    size = (const((H, W)), "size2")

    def sampler(name, **args):
        a = {B.rand_name: RB, **args}
        audit_fn(area, name, getattr(m, name), a)

    def rec(name, **kw):
        """A params record drawn with the backend's sampler (a fresh one each time)."""
        return (lambda: getattr(m, name)(B.rng(), **kw) if not torch else getattr(m, name)(generator=B.rng(), **kw),
                B.record_bad)

    def sample_kw(name, **kw):
        if torch:
            return getattr(m, name)(generator=B.rng(), **kw)
        return getattr(m, name)(B.rng(), **kw)

    def recf(name, **kw):
        return (lambda: sample_kw(name, **kw), B.record_bad)

    # losses
    audit_fn(area, "smooth_labels", m.smooth_labels,
             dict(labels=lab, num_classes=(const(K), "pos_int"), smoothing=(const(0.1), "prob")),
             valid={"labels": {"rank2_int", "wrong_length", "empty"}})  # labels of any shape: [N, d1, ...]
    audit_fn(area, "soft_target_cross_entropy", m.soft_target_cross_entropy,
             dict(logits=(B.logits, B.logits_bad), targets=(B.soft, B.soft_bad), reduction=(const("mean"), "choice")))
    audit_fn(area, "label_smoothing_cross_entropy", m.label_smoothing_cross_entropy,
             dict(logits=(B.logits, B.logits_bad), labels=lab, smoothing=(const(0.1), "prob"),
                  reduction=(const("mean"), "choice")))
    audit_fn(area, "distillation_loss", m.distillation_loss,
             dict(student_logits=(B.logits, B.logits_bad), teacher_logits=(B.logits, B.logits_bad),
                  temperature=(const(4.0), "pos_real"), reduction=(const("batchmean"), "choice")))
    audit_fn(area, "kd_loss", m.kd_loss,
             dict(student_logits=(B.logits, B.logits_bad), teacher_logits=(B.logits, B.logits_bad), labels=lab,
                  temperature=(const(4.0), "pos_real"), alpha=(const(0.9), "prob")))

    # mixing: samplers, kernels, wrappers
    mix = {
        "mixup": (dict(alpha=(const(1.0), "nonneg_real"), per_sample=(const(False), "bool")), {}),
        "ricap": (dict(beta=(const(0.3), "pos_real"), per_image_offsets=(const(False), "bool")), {"image_size": size}),
        "cutmix": (dict(alpha=(const(1.0), "nonneg_real"), per_sample=(const(False), "bool")), {"image_size": size}),
        "mixup_cutmix": (dict(mixup_alpha=(const(1.0), "nonneg_real"), cutmix_alpha=(const(1.0), "nonneg_real"),
                              cutmix_minmax=(const(None), "opt_unit_range"), prob=(const(1.0), "prob"),
                              switch_prob=(const(0.5), "prob"), mode=(const("batch"), "choice"),
                              correct_lam=(const(True), "bool")), {"image_size": size}),
    }
    for trick, (hyper, geo) in mix.items():
        sampler(f"sample_{trick}_params", batch_size=(const(N), "batch"), **geo, **hyper)
        kw = {k: f() for k, (f, _) in geo.items()}
        kernel_args = dict(images=ims_f, targets=tgt, params=recf(f"sample_{trick}_params", batch_size=N, **kw),
                           num_classes=(const(K), "pos_int"))
        if trick == "mixup_cutmix":
            kernel_args["label_smoothing"] = (const(0.0), "prob")
        audit_fn(area, trick, getattr(m, trick), kernel_args)
        cls = {"mixup": "Mixup", "ricap": "RICAP", "cutmix": "CutMix", "mixup_cutmix": "MixupCutmix"}[trick]
        hyper_w = {k: v for k, v in hyper.items()}
        if trick == "mixup_cutmix":
            hyper_w["label_smoothing"] = (const(0.0), "prob")
        if torch:
            Cls = getattr(m, cls)
            audit_module(area, cls, Cls, dict(hyper_w, num_classes=(const(K), "pos_int")),
                         dict(images=ims_f, targets=tgt))
        else:
            audit_fn(area, f"random_{trick}", getattr(m, f"random_{trick}"),
                     {"key": RB, "images": ims_f, "targets": tgt, "num_classes": (const(K), "pos_int"), **hyper_w})

    # erasing
    sampler("sample_cutout_params", batch_size=(const(N), "batch"), image_size=size, n_holes=(const(1), "nonneg_int"))
    for dt, ims in (("uint8", ims_u8), ("float", ims_f)):
        audit_fn(area, "cutout", m.cutout, dict(images=ims, params=recf("sample_cutout_params", batch_size=N,
                                                                       image_size=(H, W)),
                                                length=(const(3), "nonneg_int"), fill=(const(0), "fill")))
    cut = dict(n_holes=(const(1), "nonneg_int"), length=(const(3), "nonneg_int"), fill=(const(0), "fill"))
    er = dict(p=(const(0.5), "prob"), scale=(const((0.02, 0.33)), "unit_range"), ratio=(const((0.3, 3.3)), "pos_range"),
              value=(const(0.0), "fill"), mode=(const(None), "opt_choice"), min_count=(const(1), "pos_int"),
              max_count=(const(None), "opt_pos_int"))
    sampler("sample_random_erasing_params", batch_size=(const(N), "batch"), image_size=size,
            channels=(const(C), "pos_int"), **er)
    audit_fn(area, "erase", m.erase, dict(images=ims_f, params=recf("sample_random_erasing_params", batch_size=N,
                                                                    image_size=(H, W), channels=C, p=1.0)))
    if torch:
        audit_module(area, "Cutout", m.Cutout, cut, dict(images=ims_u8))
        audit_module(area, "RandomErasing", m.RandomErasing, er, dict(images=ims_f))
    else:
        audit_fn(area, "random_cutout", m.random_cutout, dict(key=RB, images=ims_u8, **cut))
        audit_fn(area, "random_erasing", m.random_erasing, dict(key=RB, images=ims_f, **er))

    # cropping
    crop = dict(scale=(const((0.08, 1.0)), "crop_scale"), ratio=(const((0.75, 4 / 3)), "pos_range"))
    # scale above 1 is torchvision's too (the area is then capped by the image)
    audit_fn(area, "sample_resized_crop_params", getattr(m, "sample_resized_crop_params"),
             {B.rand_name: RB, "batch_size": (const(N), "batch"), "image_size": size, **crop},
             valid={"scale": {"above_1"}})
    sampler("sample_flip_params", batch_size=(const(N), "batch"), p=(const(0.5), "prob"))
    audit_fn(area, "resized_crop", m.resized_crop,
             dict(images=ims_u8, params=recf("sample_resized_crop_params", batch_size=N, image_size=(H, W)),
                  size=(const((6, 6)), "size2")))
    audit_fn(area, "hflip", m.hflip, dict(images=ims_u8, params=recf("sample_flip_params", batch_size=N)))
    if torch:
        audit_module(area, "RandomResizedCropFlip", m.RandomResizedCropFlip,
                     dict(size=(const((6, 6)), "size2"), flip_p=(const(0.5), "prob"), **crop), dict(images=ims_u8))
    else:
        audit_fn(area, "random_resized_crop_flip", m.random_resized_crop_flip,
                 dict(key=RB, images=ims_u8, size=(const((6, 6)), "size2"), flip_p=(const(0.5), "prob"), **crop))

    # policies
    look = dict(fill=(const(None), "fill"), interpolation=(const("nearest"), "choice"))
    sampler("sample_autoaugment_params", batch_size=(const(N), "batch"), policy=(const("imagenet"), "choice"))
    audit_fn(area, "autoaugment", m.autoaugment,
             dict(images=ims_u8, params=recf("sample_autoaugment_params", batch_size=N, policy="imagenet"),
                  policy=(const("imagenet"), "choice"), **look))
    sampler("sample_randaugment_params", batch_size=(const(N), "batch"), num_ops=(const(2), "nonneg_int"))
    ra = dict(magnitude=(const(9), "nonneg_int"), num_magnitude_bins=(const(31), "pos_int"))
    audit_fn(area, "randaugment", m.randaugment,
             dict(images=ims_u8, params=recf("sample_randaugment_params", batch_size=N), **ra, **look),
             extra_bad=[("magnitude", Bad("at_bins", 31))])
    sampler("sample_trivialaugment_wide_params", batch_size=(const(N), "batch"),
            num_magnitude_bins=(const(31), "pos_int"))
    audit_fn(area, "trivialaugment_wide", m.trivialaugment_wide,
             dict(images=ims_u8, params=recf("sample_trivialaugment_wide_params", batch_size=N),
                  num_magnitude_bins=(const(31), "pos_int"), **look))
    am = dict(severity=(const(3), "pos_int"), mixture_width=(const(3), "pos_int"), chain_depth=(const(-1), "int"),
              alpha=(const(1.0), "pos_real"), all_ops=(const(True), "bool"))
    sampler("sample_augmix_params", batch_size=(const(N), "batch"), **am)
    audit_fn(area, "augmix", m.augmix, dict(images=ims_u8, params=recf("sample_augmix_params", batch_size=N),
                                            all_ops=(const(True), "bool"), **look))
    pol = {"AutoAugment": ("autoaugment", dict(policy=(const("imagenet"), "choice"))),
           "RandAugment": ("randaugment", dict(num_ops=(const(2), "nonneg_int"), **ra)),
           "TrivialAugmentWide": ("trivialaugment_wide", dict(num_magnitude_bins=(const(31), "pos_int"))),
           "AugMix": ("augmix", am)}
    for cls, (fn, hyper) in pol.items():
        if torch:
            audit_module(area, cls, getattr(m, cls), dict(hyper, **look), dict(images=ims_u8))
        else:
            audit_fn(area, f"random_{fn}", getattr(m, f"random_{fn}"), dict(key=RB, images=ims_u8, **hyper, **look))

    # ops
    for op, arg, good in (("shear_x", "magnitude", 0.3), ("shear_y", "magnitude", 0.3), ("translate_x", "pixels", 2.0),
                          ("translate_y", "pixels", 2.0), ("rotate", "angle", 10.0)):
        audit_fn(area, f"ops.{op}", getattr(m.ops, op), {"images": ims_u8, arg: (const(good), "real"), **look})
    for op, arg, good, kind in (("brightness", "magnitude", 0.3, "real"), ("color", "magnitude", 0.3, "real"),
                                ("contrast", "magnitude", 0.3, "real"), ("sharpness", "magnitude", 0.3, "real"),
                                ("posterize", "bits", 4, "nonneg_int"), ("solarize", "threshold", 0.5, "real")):
        audit_fn(area, f"ops.{op}", getattr(m.ops, op), {"images": ims_u8, arg: (const(good), kind)})
    for op in ("autocontrast", "equalize", "invert"):
        audit_fn(area, f"ops.{op}", getattr(m.ops, op), {"images": ims_u8})
        audit_fn(area, f"ops.{op}[float]", getattr(m.ops, op), {"images": ims_f})

    # optimizers
    audit_optim(B)
    # data helpers
    audit_data(B)


def audit_module(area, name, Cls, ctor: dict, inputs: dict):
    """A torch module: bad constructor arguments, bad forward inputs, bad attributes set after construction."""
    def build_and_call(**v):
        mod = Cls(**{k: v[k] for k in ctor}, generator=_torch_gen())
        return mod(*[v[k] for k in inputs])

    # torch modules take one [C, H, W] image as torchvision's transforms do (torch_impl/transform.py)
    audit_fn(area, name, build_and_call, {**ctor, **inputs}, valid={"images": {"rank3"}})
    for attr, (factory, kind) in ctor.items():
        bads = kind(factory()) if callable(kind) else scalar_bad(kind)
        for bad in bads:
            def set_after(bad=bad, attr=attr, **v):
                mod = Cls(**{k: f() for k, (f, _k) in ctor.items()}, generator=_torch_gen())
                setattr(mod, attr, bad.value)
                return mod(*[v[k] for k in inputs])

            run_case(area, name + ".attr", lambda **v: set_after(**v), {k: inputs[k] for k in inputs},
                     "__attr__", Bad(f"{attr}:{bad.case}", None, must=bad.must), names=(attr,))
            # the value is applied inside set_after; "__attr__" is no argument of it
            AUDIT.rows[-1]["arg"] = attr


def _torch_gen():
    import torch

    return torch.Generator().manual_seed(0)


def audit_optim(B):
    area = B.area
    if area == "torch":
        import torch

        m = B.m
        for cls in ("AdaBound", "AMSBound", "AdaBoundW"):
            Cls = getattr(m, cls)

            def step(params=None, **hp):
                w = torch.nn.Parameter(torch.ones(3))
                opt = Cls([w] if params is None else params, **hp)
                w.grad = torch.ones(3)
                opt.step()
                return w.detach().clone()

            hp = dict(lr=(const(1e-3), "pos_real"), betas=(const((0.9, 0.999)), "betas"),
                      final_lr=(const(0.1), "pos_real"), gamma=(const(1e-3), "nonneg_real"),
                      eps=(const(1e-8), "nonneg_real"), weight_decay=(const(0.0), "nonneg_real"))
            audit_fn(area, cls, step, hp, names={"params": ("params", "parameter")},
                     extra_bad=[("params", Bad("empty", [])),
                                ("params", Bad("str", "w"))])
            for key, bad in (("lr", float("nan")), ("lr", -1.0), ("betas", (1.5, 0.9)), ("eps", -1.0),
                             ("final_lr", float("inf")), ("gamma", -1.0), ("weight_decay", float("nan"))):
                def after(key=key, bad=bad):
                    w = torch.nn.Parameter(torch.ones(3))
                    opt = Cls([w])
                    opt.param_groups[0][key] = bad
                    w.grad = torch.ones(3)
                    opt.step()
                    return w.detach()

                run_case(area, cls + ".param_groups", lambda **_: after(), {}, key, Bad(f"set_after:{bad}", None),
                         names=(key,))
            # NaN gradients: propagate by design? they are the user's model's; classify as a bad input
    else:
        import jax.numpy as jnp

        m = B.m
        for fn in ("adabound", "amsbound", "adaboundw"):
            f = getattr(m, fn)

            def step(learning_rate, **hp):
                tx = f(learning_rate, **hp)
                p = {"w": jnp.ones(3)}
                s = tx.init(p)
                u, _ = tx.update({"w": jnp.ones(3)}, s, p)
                return u["w"]

            hp = dict(learning_rate=(const(1e-3), "pos_real"), final_lr=(const(0.1), "pos_real"),
                      b1=(const(0.9), "prob"), b2=(const(0.999), "prob"), gamma=(const(1e-3), "nonneg_real"),
                      eps=(const(1e-8), "nonneg_real"), weight_decay=(const(0.0), "nonneg_real"))
            audit_fn(area, fn, step, hp)


def audit_data(B):
    area = B.area
    m = B.m.data
    if area == "torch":
        import torch

        audit_fn(area, "data.epoch_permutation", m.epoch_permutation,
                 dict(n=(const(8), "nonneg_int"), generator=(_torch_gen, B.rand_kind)))
        audit_fn(area, "data.batch_indices", m.batch_indices,
                 dict(perm=(lambda: torch.arange(8), lambda g: [Bad("list", g.tolist()), Bad("float", g.float()),
                                                               Bad("rank2", g[None])]),
                      step=(const(0), "nonneg_int"), batch_size=(const(4), "pos_int")),
                 extra_bad=[("step", Bad("past_end", 5))])
        audit_fn(area, "data.eval_batches", lambda **v: list(m.eval_batches(**v)),
                 dict(images=(lambda: B.images(), lambda g: [Bad("list", [1, 2]), Bad("str", "x")]),
                      labels=(B.labels, lambda g: [b for b in B.labels_bad(g) if b.case not in ("out_of_range", "negative")]),
                      batch_size=(const(2), "pos_int")))
    else:
        import jax.numpy as jnp

        audit_fn(area, "data.epoch_permutation", m.epoch_permutation,
                 dict(key=(B.rng, B.rand_kind), n=(const(8), "nonneg_int")))
        audit_fn(area, "data.batch_indices", m.batch_indices,
                 dict(perm=(lambda: jnp.arange(8), lambda g: [Bad("list", np.asarray(g).tolist()),
                                                             Bad("float", g.astype(jnp.float32)), Bad("rank2", g[None])]),
                      step=(const(0), "nonneg_int"), batch_size=(const(4), "pos_int")),
                 extra_bad=[("step", Bad("past_end", 5))])
        audit_fn(area, "data.eval_batches", lambda **v: list(m.eval_batches(**v)),
                 dict(images=(lambda: B.images(), lambda g: [Bad("list", [1, 2]), Bad("str", "x")]),
                      labels=(B.labels, lambda g: [b for b in B.labels_bad(g) if b.case not in ("out_of_range", "negative")]),
                      batch_size=(const(2), "pos_int")))
    if area == "torch":  # framework-free transforms, once
        from twintricks.data import transforms as T

        from PIL import Image

        img = lambda: Image.new("RGB", (10, 12))  # noqa: E731  (the loader's transforms take a decoded PIL image)
        img_bad = lambda g: [Bad("numpy", np.asarray(g)), Bad("str", "img.png"), Bad("none", None)]  # noqa: E731
        audit_fn("torch", "data.transforms.sample_crop", T.sample_crop,
                 dict(rng=(lambda: np.random.default_rng(0), lambda g: [Bad("int", 3), Bad("str", "x")]),
                      height=(const(12), "pos_int"), width=(const(10), "pos_int"),
                      scale=(const((0.08, 1.0)), "crop_scale"), ratio=(const((0.75, 4 / 3)), "pos_range")))
        audit_fn("torch", "data.transforms.resized_crop", T.resized_crop,
                 dict(image=(img, img_bad), box=(const((0, 0, 6, 6)), lambda g: [
                     Bad("negative", (-1, 0, 6, 6)), Bad("outside", (0, 0, 60, 6)), Bad("zero", (0, 0, 0, 6)),
                     Bad("short", (0, 0, 6)), Bad("str", "box")]), size=(const((4, 4)), "size2")))
        audit_fn("torch", "data.transforms.eval_crop", T.eval_crop,
                 dict(image=(img, img_bad), image_size=(const(8), "pos_int")))


# ----------------------------------------------------------------------------------------------
# parity


def audit_parity():
    import torch

    import parity
    from parity import convert, strategies as S

    area = "parity"
    arr = lambda: np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # noqa: E731
    arr_bad = lambda g: [Bad("rank3", g[0]), Bad("rank1", g.reshape(-1)), Bad("str", "x"), Bad("none", None),  # noqa: E731
                         Bad("object", np.array([object()]))]
    for fn in ("nhwc_to_nchw", "nchw_to_nhwc", "images_to_torch", "images_to_jax", "images_from_jax"):
        first = list(__import__("inspect").signature(getattr(convert, fn)).parameters)[0]
        audit_fn(area, f"convert.{fn}", getattr(convert, fn), {first: (arr, arr_bad)},
                 valid={first: {"rank3"}})  # [..., H, W, C]: one image too
    audit_fn(area, "convert.images_from_torch", convert.images_from_torch,
             dict(images_nchw=(lambda: torch.zeros(2, 3, 4, 5), lambda g: [Bad("rank3", g[0], must=False),
                                                                          Bad("rank1", g.reshape(-1)), Bad("str", "x")])))
    for fn in ("to_numpy", "to_torch", "to_jax"):
        audit_fn(area, f"convert.{fn}", getattr(convert, fn),
                 dict(x=(arr, lambda g: [Bad("str", "x"), Bad("object", np.array([object()])), Bad("dict", {"a": 1})])))
    lin = torch.nn.Linear(3, 2)
    audit_fn(area, "convert.torch_state_dict_to_flax", convert.torch_state_dict_to_flax,
             dict(state_dict=(lambda: {k: v.detach().numpy() for k, v in lin.state_dict().items()},
                              lambda g: [Bad("list", [1, 2]), Bad("str", "x"), Bad("bad_key", {"weight": 3}),
                                         Bad("nested_junk", {"a.b": "x"})])),
             names={"state_dict": ("state_dict", "parameter")})
    # the check API
    tfn = lambda x: x * 2  # noqa: E731

    jfn = lambda x: x * 2  # noqa: E731
    good_inputs = lambda: {"x": S.scaled_normals((3,))}  # noqa: E731
    audit_fn(area, "check", lambda torch_fn, jax_fn, inputs, atol, rtol: parity.check(
        torch_fn, jax_fn, inputs=inputs, atol=atol, rtol=rtol, examples=3, reason="audit: float32 rounding"),
        dict(torch_fn=(const(tfn), lambda g: [Bad("none", None), Bad("str", "f")]),
             jax_fn=(const(jfn), lambda g: [Bad("none", None), Bad("int", 3)]),
             inputs=(good_inputs, lambda g: [Bad("none", None), Bad("list", [1, 2]), Bad("str", "x")]),
             atol=(const(1e-6), "nonneg_real"), rtol=(const(1e-6), "nonneg_real")),
        names={"torch_fn": ("torch_fn",), "jax_fn": ("jax_fn",)},
        valid={"atol": {"none"}, "rtol": {"none"}})  # one of them None, the other given: None is 0
    audit_fn(area, "function_check", lambda name, atol: parity.function_check(
        name, tfn, jfn, inputs=good_inputs(), atol=atol, rtol=0.0, reason="audit"),
        dict(name=(const("double"), lambda g: [Bad("int", 3), Bad("empty", ""), Bad("none", None)]),
             atol=(const(1e-6), "nonneg_real")),
             valid={"atol": {"none"}})  # atol=None with rtol=0: exact (parity.functions._tolerance)
    audit_fn(area, "load_checks", parity.load_checks,
             dict(module_name=(const("parity.tricks.losses"), lambda g: [Bad("missing", "no_such_module_xyz"),
                                                                         Bad("int", 3), Bad("empty", "")])),
             names={"module_name": ("module_name", "no_such_module_xyz", "module")})
    reg = parity.Registry()
    audit_fn(area, "Registry.select", reg.select,
             dict(names=(const([]), lambda g: [Bad("unknown", ["bogus"]), Bad("int", 3)])),
             names={"names": ("names", "bogus")})
    # strategies: bad arguments, drawn once
    from hypothesis import HealthCheck, given, settings

    def draw(strategy):
        out = []

        @settings(max_examples=1, database=None, suppress_health_check=list(HealthCheck), deadline=None, derandomize=True,
                  print_blob=False)
        @given(strategy)
        def t(x):
            out.append(x)

        t()
        return out[0]

    for fn, args in (
        ("batch_sizes", dict(max_size=(const(4), "pos_int"))),
        ("num_classes", dict(max_classes=(const(5), "pos_int"))),
        ("image_shapes", dict(min_side=(const(1), "pos_int"), max_side=(const(4), "pos_int"),
                              max_batch=(const(4), "pos_int"))),
        ("int_labels", dict(n=(const(4), "nonneg_int"), k=(const(3), "pos_int"))),
        ("soft_targets", dict(n=(const(4), "nonneg_int"), k=(const(3), "pos_int"))),
        ("logits", dict(n=(const(4), "nonneg_int"), k=(const(3), "pos_int"), max_magnitude=(const(30.0), "pos_real"))),
        ("permutations", dict(n=(const(4), "nonneg_int"))),
        ("scaled_normals", dict(shape=(const((3,)), lambda g: [Bad("negative", (-1,)), Bad("str", "x"),
                                                                Bad("float", (1.5,))]))),
        ("crop_boxes", dict(n=(const(2), "nonneg_int"), height=(const(4), "pos_int"), width=(const(4), "pos_int"))),
        ("mixup_params", dict(n=(const(3), "nonneg_int"))),
        ("cutmix_params", dict(n=(const(3), "nonneg_int"), height=(const(4), "pos_int"), width=(const(4), "pos_int"))),
        ("randaugment_params", dict(n=(const(3), "nonneg_int"), num_ops=(const(2), "nonneg_int"))),
        ("augmix_params", dict(n=(const(3), "nonneg_int"), width=(const(2), "pos_int"), depth=(const(2), "pos_int"))),
        ("autoaugment_params", dict(n=(const(3), "nonneg_int"), policy=(const("imagenet"), "choice"))),
        ("policy_family_cases", dict(family=(const("randaugment"), "choice"))),
        ("image_batches", dict(layout=(const("NHWC"), "choice"))),
    ):
        strat = getattr(S, fn)
        audit_fn(area, f"strategies.{fn}", lambda strat=strat, **v: draw(strat(**v)), args)


# ----------------------------------------------------------------------------------------------
# crafted files


def audit_files(tmp: Path):
    from twintricks import checkpoint as ck
    from twintricks.data import decode_rgb, open_source
    from twintricks.files import load_json
    from twintricks.recipe import TrainConfig, steps_per_epoch
    from twintricks.schema import check_config_json, check_history, check_run_state

    area = "files"
    config = TrainConfig(backend="torch", epochs=2, out=str(tmp / "run"))
    spe = steps_per_epoch(1437, config.batch_size)
    row = dict(epoch=1, train_loss=1.0, train_acc=0.5, test_loss=1.0, test_acc=0.5, lr=0.01)
    from twintricks.schema import HISTORY_FIELDS

    row = {f: (1 if kind == "int" else 0.5) for f, (kind, _lo, _hi) in HISTORY_FIELDS.items()}
    good = dict(framework="torch", config=dict(config.to_json()) if hasattr(config, "to_json") else None,
                model_name=config.model, width=config.width, num_classes=10, epoch=1, step=spe,
                history=[row], progress=None, data=None, threads=None, world_size=1)
    import dataclasses

    good["config"] = json.loads(json.dumps(dataclasses.asdict(config)))
    # the baseline must pass the schema
    base_path = tmp / "good.ckpt"
    ck.save_checkpoint(base_path, good)

    def load_and_check(path):
        saved = ck.load_checkpoint(path)
        return check_run_state(saved, config, framework="torch", steps_per_epoch=spe)

    try:
        load_and_check(base_path)
    except Exception as exc:  # noqa: BLE001
        AUDIT.add(area, "checkpoint", "-", "baseline", "OBSCURE", f"HARNESS baseline: {type(exc).__name__}: {exc}")
        return
    bad_values = [("str", "3"), ("negative", -3), ("float", 1.5), ("none", None), ("nan", float("nan")),
                  ("huge", 10**9), ("list", [1]), ("dict", {"a": 1}), ("bool", True)]
    for field in good:
        for case, val in bad_values:
            if field in ("progress", "data", "threads") and val is None:
                continue
            payload = dict(good, **{field: val})
            p = tmp / f"bad-{field}-{case}.ckpt"
            try:
                ck.save_checkpoint(p, payload)  # re-signed: the digest verifies
            except Exception as exc:  # noqa: BLE001
                AUDIT.add(area, "save_checkpoint", field, case, *judge_exception(exc, (field,)))
                continue
            # valid here: a None width (the model's default); sizes the backend compares with its model
            # and data (num_classes, data), counts the schema bounds below only (threads, world_size)
            valid = (field, case) in {("width", "none"), ("num_classes", "huge"), ("data", "dict"), ("threads", "huge"),
                                      ("world_size", "huge")}
            run_case(area, "checkpoint(re-signed)", lambda path: load_and_check(path), {"path": (const(p), "path")},
                     "path", Bad(f"{field}:{case}", p, must=not valid), names=(field,))
            AUDIT.rows[-1]["arg"] = field
    for case, mutate in (("history_row_missing", lambda h: [{k: v for k, v in h[0].items() if k != "lr"}]),
                         ("history_acc_2", lambda h: [dict(h[0], train_acc=2.0)]),
                         ("history_loss_nan", lambda h: [dict(h[0], train_loss=float("nan"))]),
                         ("history_two_rows", lambda h: h * 2), ("history_epoch_str", lambda h: [dict(h[0], epoch="1")])):
        p = tmp / f"bad-{case}.ckpt"
        ck.save_checkpoint(p, dict(good, history=mutate(good["history"])))
        run_case(area, "checkpoint(re-signed)", lambda path: load_and_check(path), {"path": (const(p), "path")},
                 "history", Bad(case, p), names=("history",))
    # damaged and huge files
    raw = base_path.read_bytes()
    crafted = {"truncated": raw[: len(raw) // 2], "empty": b"", "garbage": os.urandom(256),
               "flipped_byte": raw[:40] + bytes([raw[40] ^ 0xFF]) + raw[41:],
               "huge_header_len": (2**62).to_bytes(8, "little") + raw[8:],
               "pickle": b"\x80\x04\x95" + os.urandom(64)}
    for case, data in crafted.items():
        p = tmp / f"crafted-{case}.ckpt"
        p.write_bytes(data)
        run_case(area, "load_checkpoint", ck.load_checkpoint, {"path": (const(p), "path")}, "path", Bad(case, p),
                 names=(str(p), p.name, "checkpoint"))
    big = dict(good, data={"x": [[] for _ in range(1_200_000)]})  # over PAYLOAD_CAPS' 1,000,000 values
    p = tmp / "huge-payload.ckpt"
    try:
        ck.save_checkpoint(p, big)
        run_case(area, "load_checkpoint", ck.load_checkpoint, {"path": (const(p), "path")}, "path",
                 Bad("many_empty_lists", p), names=("checkpoint", p.name, "payload", "cap", "limit"))
    except Exception as exc:  # noqa: BLE001
        AUDIT.add(area, "save_checkpoint", "data", "many_empty_lists", *judge_exception(exc, ("payload", "cap")))
    deep = {"a": None}
    for _ in range(5000):
        deep = {"a": deep}
    run_case(area, "load_json", lambda text: load_json(text, what="config.json"), {"text": (const(""), "path")},
             "text", Bad("nested_5000", json.dumps(deep) if False else "[" * 5000 + "]" * 5000),
             names=("config.json",))
    for case, obj in (("threads_str", {"threads": "2"}), ("threads_zero", {"threads": 0}),
                      ("threads_float", {"threads": 1.5}), ("threads_bool", {"threads": True}),
                      ("list", [1, 2]), ("str", "x")):
        run_case(area, "check_config_json", lambda obj: check_config_json(obj), {"obj": (const({}), "path")},
                 "obj", Bad(case, obj), names=("config.json", "threads"))
    for case, text in (("not_json", "{"), ("nan", '{"threads": NaN}'), ("huge_int", '{"threads": ' + "9" * 5000 + "}"),
                       ("dup_keys", '{"threads": 1, "threads": 2}')):
        run_case(area, "load_json", lambda text: check_config_json(load_json(text, what="config.json")),
                 {"text": (const("{}"), "path")}, "text", Bad(case, text, must=case != "dup_keys"),
                 names=("config.json", "threads"))
    for case, hist in (("row_str", ["x"]), ("acc_2", [dict(row, train_acc=2.0)]), ("epoch_0", [dict(row, epoch=0)]),
                       ("lr_negative", [dict(row, lr=-1.0)]), ("missing_field", [{"epoch": 1}]),
                       ("too_many", [row, dict(row, epoch=2)]), ("not_list", {"a": 1})):
        run_case(area, "check_history(metrics.jsonl)", lambda history: check_history(history, 1),
                 {"history": (const([row]), "path")}, "history", Bad(case, hist), names=("history", "epoch", "acc",
                                                                                         "lr", "field"))
    # images in a data folder
    from PIL import Image

    def png(size=(4, 4), mode="RGB"):
        b = io.BytesIO()
        Image.new(mode, size).save(b, format="PNG")
        return b.getvalue()

    good_png = png()
    bomb = bytearray(png((8, 8)))
    bomb[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")  # IHDR width/height (CRC now wrong)
    import zlib

    ihdr = bytes(bomb[12:29])
    bomb[29:33] = zlib.crc32(ihdr).to_bytes(4, "big")
    images = {"empty": (b"", True), "garbage": (os.urandom(64), True), "truncated": (good_png[:30], True),
              "text": (b"hello world", True), "bomb_60000x60000": (bytes(bomb), True),
              "grey": (png(mode="L"), False), "rgba": (png(mode="RGBA"), False), "cmyk_jpeg": (None, False),
              "palette": (png(mode="P"), False), "one_pixel": (png((1, 1)), False), "16bit": (png(mode="I;16"), False)}
    b = io.BytesIO()
    Image.new("CMYK", (4, 4)).save(b, format="JPEG")
    images["cmyk_jpeg"] = (b.getvalue(), False)

    def decode(data, name="img.png"):
        out = decode_rgb(data, name)
        arr = np.asarray(out)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise AssertionError(f"decode_rgb returned {arr.dtype} {arr.shape}")
        return arr

    for case, (data, must) in images.items():
        run_case(area, "decode_rgb", decode, {"data": (const(good_png), "path")}, "data", Bad(case, data, must=must),
                 names=("img.png",))
        AUDIT.rows[-1]["detail"] += (" [BadImageError]" if "BadImageError" in AUDIT.rows[-1]["detail"] else "")
    # a data folder with odd contents, indexed and read
    def folder(case, files):
        root = tmp / f"folder-{case}"
        for rel, data in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        return root

    def read_all(root):
        src = open_source("folder", root, split="train")
        return [decode_rgb(*reversed((src.name(i),))[:0], src.read(i)[0], src.name(i)) if False else
                decode(src.read(i)[0], src.name(i)) for i in range(len(src))]

    ok_files = {"train/a/1.png": good_png, "train/b/2.png": good_png}
    layouts = {"no_train": {"test/a/1.png": good_png}, "empty_class": {"train/a/1.png": good_png, "train/b/x.txt": b""},
               "one_class": {"train/a/1.png": good_png}, "bomb": {**ok_files, "train/a/3.png": bytes(bomb)},
               "corrupt": {**ok_files, "train/a/3.png": good_png[:30]},
               "files_at_top": {"train/1.png": good_png}}
    for case, files in layouts.items():
        root = folder(case, files)
        run_case(area, "FolderSource", read_all, {"root": (const(folder("ok", ok_files)), "path")}, "root",
                 Bad(case, root, must=case not in ("empty_class", "one_class")),
                 names=(str(root), "train", case, "class", "image", ".png"))
    run_case(area, "FolderSource", read_all, {"root": (const(folder("ok", ok_files)), "path")}, "root",
             Bad("missing", tmp / "nope"), names=(str(tmp / "nope"),))
    # tar shards with odd members
    import tarfile

    def shard(case, members):
        root = tmp / f"shards-{case}"
        (root / "train").mkdir(parents=True, exist_ok=True)
        path = root / "train" / "shard-000000.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return root

    def read_shards(root):
        src = open_source("shards", root, split="train")
        return [decode(src.read(i)[0], src.name(i)) for i in range(len(src))]

    good_members = [("a.png", good_png), ("a.cls", b"0"), ("b.png", good_png), ("b.cls", b"1")]
    shard_cases = {"cls_str": good_members[:1] + [("a.cls", b"cat")] + good_members[2:],
                   "cls_negative": good_members[:1] + [("a.cls", b"-1")] + good_members[2:],
                   "cls_huge": good_members[:1] + [("a.cls", b"9" * 40)] + good_members[2:],
                   "no_cls": [("a.png", good_png), ("b.png", good_png)],
                   "traversal": [("../../evil.png", good_png), ("../../evil.cls", b"0")] + good_members,
                   "corrupt_image": [("a.png", good_png[:30]), ("a.cls", b"0")] + good_members[2:],
                   "bomb": [("a.png", bytes(bomb)), ("a.cls", b"0")] + good_members[2:],
                   "big_cls": good_members[:1] + [("a.cls", b"0" * 2_000_000)] + good_members[2:]}
    base_shards = shard("ok", good_members)
    for case, members in shard_cases.items():
        root = shard(case, members)
        # a member named ../../x is only a name: shards are read at offsets, nothing is extracted
        run_case(area, "ShardSource", read_shards, {"root": (const(base_shards), "path")}, "root",
                 Bad(case, root, must=case != "traversal"),
                 names=("shard", ".tar", "a.png", "a.cls", "evil", "member", "label"))
    # a decompression bomb inside a .tar.gz member
    import gzip

    root = tmp / "shards-gzbomb"
    (root / "train").mkdir(parents=True)
    raw_tar = io.BytesIO()
    with tarfile.open(fileobj=raw_tar, mode="w") as tar:
        for name, data in [("a.png", b"\0" * (64 << 20)), ("a.cls", b"0")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (root / "train" / "shard-000000.tar.gz").write_bytes(gzip.compress(raw_tar.getvalue(), 9))
    run_case(area, "ShardSource", read_shards, {"root": (const(base_shards), "path")}, "root",
             Bad("gz_member_64MB_zeros", root), names=("shard", "a.png", "member", "tar"))
    # teacher files
    for backend in ("torch", "jax"):
        mod = __import__(f"{backend}_impl.teacher", fromlist=["load_teacher"])
        for case, data in (("garbage", os.urandom(100)), ("empty", b""), ("json", b'{"a": 1}'),
                           ("checkpoint_without_model", None)):
            p = tmp / f"teacher-{backend}-{case}.bin"
            if data is None:
                p = base_path
            else:
                p.write_bytes(data)
            run_case(area, f"{backend}_impl.load_teacher", lambda path: mod.load_teacher(path, 10),
                     {"path": (const(p), "path")}, "path", Bad(case, str(p)), names=(str(p), p.name, "teacher"))
        run_case(area, f"{backend}_impl.load_teacher", lambda path: mod.load_teacher(path, 10),
                 {"path": (const(""), "path")}, "path", Bad("missing", "/nonexistent/t.ckpt"),
                 names=("/nonexistent/t.ckpt",))


# ----------------------------------------------------------------------------------------------
# command line


@contextlib.contextmanager
def memory_cap(extra: int = 2 << 30):
    """Cap this process's data segment at its size now plus ``extra`` bytes: a file that makes the
    reader allocate without bound ends in a ``MemoryError`` (classified OBSCURE), not in the
    machine's memory filling up (one crafted shard label did that before it was capped)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    with open("/proc/self/status") as f:
        now = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
    cap = now + extra if hard == resource.RLIM_INFINITY else min(now + extra, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


class _Reached(Exception):
    """The bad value got past every check to where the data would load."""


_LOADED = []


def _cli_call(argv):
    """Run ``twintricks ARGV`` in this process, stopping where training would start (the data and
    the teacher are loaded for real; :data:`_LOADED` says whether the data loading started)."""
    import jax_impl.train
    import torch_impl.train
    import twintricks_cli
    from twintricks_cli import train as cli_train

    def reached(*_a, **_k):
        raise _Reached()

    real_load = cli_train._load_data

    def load(config):
        _LOADED.append(True)
        return real_load(config)

    err, out = io.StringIO(), io.StringIO()
    _LOADED.clear()
    saved = cli_train._load_data
    cli_train._load_data = load
    saved_train = torch_impl.train.train, jax_impl.train.train
    torch_impl.train.train = jax_impl.train.train = reached
    import parity.registry as reg

    saved_run = reg.run_seeded
    reg.run_seeded = reached
    from twintricks_bench import harness

    saved_bench = getattr(harness, "run_bench", None)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = twintricks_cli.main(argv)
                return "exit", code, err.getvalue()
            except SystemExit as exc:
                return "exit", exc.code, err.getvalue()
            except _Reached:
                return "reached", 0, err.getvalue()
            except Exception as exc:  # noqa: BLE001
                return "raw", f"{type(exc).__name__}: {exc}", err.getvalue()
    finally:
        cli_train._load_data = saved
        torch_impl.train.train, jax_impl.train.train = saved_train
        reg.run_seeded = saved_run
        if saved_bench is not None:
            harness.run_bench = saved_bench


def judge_cli(area, target, arg, case, argv, must=True):
    kind, code, err = _cli_call(argv)
    late = " [after the data loading started]" if _LOADED else ""
    if kind == "raw":
        AUDIT.add(area, target, arg, case, "RAW", str(code) + late)
    elif kind == "reached" or code in (0, None):
        design = AUDIT.design(area, target, arg, case)
        AUDIT.add(area, target, arg, case, ("DESIGN" if design else "SILENT") if must else "OK",
                  design or ("accepted: reached the training" if kind == "reached" else "exit 0"))
    else:
        msg = code if isinstance(code, str) else err.strip().splitlines()[-1] if err.strip() else ""
        flag = arg if arg.startswith("-") else ""
        one_line = "\n" not in str(msg).strip()
        named = not flag or flag in str(msg) or flag.lstrip("-").replace("-", "_") in str(msg) or "argument" in str(msg)
        AUDIT.add(area, target, arg, case, "OK" if one_line and named else "OBSCURE", str(msg) + late)


def cli_bad(option_type, choices, nargs):
    if choices:
        return [("unknown", ["bogus"]), ("empty", [""])]
    if option_type is int:
        return [("str", ["x"]), ("float", ["1.5"]), ("negative", ["-1"]), ("zero", ["0"]), ("nan", ["nan"]),
                ("huge", ["99999999999999999999"])]
    if option_type is float:
        return [("str", ["x"]), ("nan", ["nan"]), ("inf", ["inf"]), ("neg_inf", ["-inf"]), ("negative", ["-1"]),
                ("huge", ["1e308"])]
    return [("missing_path", ["/nonexistent/audit"]), ("empty", [""])]


#: option values that are valid for these options (zero, negative), so not a bad input
_CLI_VALID = {("--seed", "zero"), ("--seed", "negative"), ("--weight-decay", "zero"), ("--label-smoothing", "zero"),
              ("--mixup-alpha", "zero"), ("--cutmix-alpha", "zero"), ("--momentum", "zero"),
              ("--randaugment-num-ops", "zero"), ("--save-every", "zero"), ("--warmup-epochs", "zero"),
              ("--random-erasing-value", "negative"), ("--random-erasing-value", "zero"),
              ("--augmix-depth", "negative"),  # -1: a random depth in 1..3, AugMix's default
              ("--cutout", "zero")}  # 0: Cutout off, the default


def audit_cli(tmp: Path):
    from twintricks.recipe import OPTIONS

    area = "cli"
    out = str(tmp / "cli-out")
    base = ["train", "--out", out]
    for backend in ("torch", "jax"):
        kind, code, err = _cli_call(["train", "--backend", backend, "--out", out])
        if kind != "reached":
            AUDIT.add(area, "train", "-", f"baseline {backend}", "OBSCURE", f"HARNESS baseline: {kind} {code} {err[-300:]}")
    for backend in ("torch", "jax"):
        for o in OPTIONS:
            if o.type is bool or o.name == "backend":
                continue
            n = o.nargs if isinstance(o.nargs, int) else (2 if o.nargs else 1)
            for case, vals in cli_bad(o.type, o.choices, o.nargs):
                if (o.cli_flag, case) in _CLI_VALID:
                    continue
                if o.name == "out" and case in ("missing_path", "empty"):
                    continue  # a new folder is made; "" is the default folder
                argv = ["train", "--backend", backend] + (["--out", out] if o.name != "out" else []) + \
                    [o.cli_flag] + vals * n
                if o.name in ("teacher_model", "teacher_width", "kd_temperature", "kd_alpha") and case != "str":
                    pass
                # a huge value is bad only where the option has a bound (the seed: jax's C long)
                judge_cli(area, f"train[{backend}]", o.cli_flag, case, argv,
                          must=case != "huge" or o.name == "seed")
        for flag, vals in (("--threads", [("zero", "0"), ("negative", "-1"), ("str", "x")]),
                           ("--num-processes", [("zero", "0"), ("str", "x")]),
                           ("--process-id", [("negative", "-1"), ("str", "x")]),
                           ("--coordinator", [("no_port", "localhost")])):
            for case, v in vals:
                judge_cli(area, f"train[{backend}]", flag, case, base + ["--backend", backend, flag, v])
    # conflicting options and cross checks
    conflicts = [
        ("--teacher-model", ["--teacher-model", "resnet18"]), ("--kd-alpha", ["--kd-alpha", "0.5"]),
        ("--kd-temperature", ["--kd-temperature", "2"]), ("--teacher-width", ["--teacher-width", "8"]),
        ("--randaugment-magnitude", ["--randaugment", "--randaugment-magnitude", "31"]),
        ("--randaugment-bins", ["--randaugment", "--randaugment-bins", "5", "--randaugment-magnitude", "9"]),
        ("--mix-mode", ["--mixup", "--mix-mode", "pair", "--batch-size", "31"]),
        ("--devices", ["--devices", "3"]), ("--teacher", ["--teacher", "/nonexistent/t.ckpt"]),
        ("--resume", ["--resume", "--out", str(tmp / "no-run")]),
        ("--data-dir", ["--dataset", "folder"]), ("--data-dir", ["--dataset", "folder", "--data-dir", "/nonexistent"]),
        ("--download", ["--dataset", "cifar10", "--download"]),
    ]
    for backend in ("torch", "jax"):
        for flag, extra in conflicts:
            argv = ["train", "--backend", backend, "--out", out] + extra
            if flag == "--resume":
                argv = ["train", "--backend", backend] + extra
            judge_cli(area, f"train[{backend}]", flag, "conflict:" + " ".join(extra[:3]), argv)
    # --out that cannot be used, a bad config.json on --resume
    f = tmp / "a-file"
    f.write_text("x")
    bad_run = tmp / "bad-config"
    bad_run.mkdir()
    (bad_run / "config.json").write_text('{"threads": "many"}')
    deep_run = tmp / "deep-config"
    deep_run.mkdir()
    (deep_run / "config.json").write_text("[" * 100000 + "]" * 100000)
    for case, argv in (("out_is_file", ["--out", str(f)]), ("out_under_file", ["--out", str(f / "x")]),
                       ("resume_bad_config", ["--resume", "--out", str(bad_run)]),
                       ("resume_deep_config", ["--resume", "--out", str(deep_run)])):
        judge_cli(area, "train[torch]", "--resume" if "resume" in case else "--out", case, ["train"] + argv)
    # other subcommands
    for case, argv in (("examples_zero", ["parity", "--examples", "0"]), ("examples_str", ["parity", "--examples", "x"]),
                       ("unknown_trick", ["parity", "--trick", "bogus"]),
                       ("missing_checks_module", ["parity", "--checks", "no_such_module_xyz"]),
                       ("seed_str", ["parity", "--seed", "x"])):
        judge_cli(area, "parity", case.split("_")[0], case, argv)
    empty = tmp / "empty-folder"
    empty.mkdir()
    for case, argv in (("missing_src", ["data", "pack", "/nonexistent", str(tmp / "dst1")]),
                       ("empty_src", ["data", "pack", str(empty), str(tmp / "dst2")]),
                       ("images_per_file_zero", ["data", "pack", str(empty), str(tmp / "dst3"), "--images-per-file", "0"]),
                       ("bad_kind", ["data", "pack", str(empty), str(tmp / "dst4"), "--from", "bogus"]),
                       ("describe_missing", ["data", "describe", "/nonexistent"]),
                       ("describe_file", ["data", "describe", str(f)]),
                       ("describe_split", ["data", "describe", str(empty), "--split", "bogus"])):
        judge_cli(area, "data", case, case, argv)
    for case, argv in (("bench_size", ["bench", "--size", "bogus"]), ("bench_only", ["bench", "--only", "bogus", "--out", out]),
                       ("no_command", []), ("unknown_command", ["bogus"]), ("unknown_flag", ["train", "--bogus"])):
        judge_cli(area, "other", case, case, argv)


def audit_cli_subprocess(tmp: Path, sample: int = 8):
    """A sample of bad command lines in fresh processes: no traceback may reach stderr."""
    area = "cli"
    cases = [["train", "--epochs", "x"], ["train", "--lr", "nan", "--out", str(tmp / "s1")],
             ["train", "--randaugment", "--randaugment-magnitude", "31", "--out", str(tmp / "s2")],
             ["train", "--kd-alpha", "0.5", "--out", str(tmp / "s3")],
             ["train", "--backend", "jax", "--devices", "3", "--out", str(tmp / "s4")],
             ["train", "--out", str(tmp / "a-file")], ["data", "describe", "/nonexistent"],
             ["parity", "--examples", "0"]][:sample]
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    for argv in cases:
        p = subprocess.run([sys.executable, "-m", "twintricks_cli", *argv], capture_output=True, text=True, env=env,
                           timeout=300)
        err = p.stderr.strip()
        if "Traceback" in err:
            v = "RAW"
        elif p.returncode == 0:
            v = "SILENT"
        else:
            lines = [ln for ln in err.splitlines() if not ln.startswith("usage") and not ln.startswith("  ")
                     and "Warning" not in ln and ln.strip()]
            v = "OK" if len(lines) <= 1 else "OBSCURE"
        AUDIT.add(area, "subprocess", argv[1] if len(argv) > 1 else argv[0], " ".join(argv[:4]), v, err[-300:])


# ----------------------------------------------------------------------------------------------


AREAS = ("torch", "jax", "parity", "files", "cli")


def summary(rows: list[dict]) -> dict:
    """The calls per (area, target), the DESIGN calls grouped by (area, target, argument) with
    their cases and where the choice is documented, and every call that is neither OK nor DESIGN."""
    calls = Counter(f"{r['area']}:{r['target']}" for r in rows)
    design: dict[str, dict] = {}
    for r in rows:
        if r["verdict"] == "DESIGN":
            d = design.setdefault(f"{r['area']}:{r['target']}:{r['arg']}", dict(cases=[], documented=r["detail"]))
            d["cases"].append(r["case"])
    return dict(calls=dict(sorted(calls.items())), design=design,
                not_ok=[r for r in rows if r["verdict"] not in ("OK", "DESIGN")])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--area", action="append", choices=AREAS, help="only these areas (repeatable; default all)")
    p.add_argument("--out", default=None, help="write a summary as JSON here: the counts, the calls per target and every "
                   "call that is not OK (DESIGN ones grouped with where the choice is documented)")
    p.add_argument("--full", action="store_true", help="with --out: every call's row instead of the summary")
    p.add_argument("--show", default="OBSCURE,SILENT,RAW", help="verdicts to print, comma separated")
    a = p.parse_args(argv)
    areas = a.area or AREAS
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twintricks-audit-") as d:
        tmp = Path(d)
        for area in areas:
            t = time.perf_counter()
            if area == "torch":
                audit_backend(TorchB())
            elif area == "jax":
                audit_backend(JaxB())
            elif area == "parity":
                audit_parity()
            elif area == "files":
                with memory_cap():
                    audit_files(tmp)
            else:
                audit_cli(tmp)
                audit_cli_subprocess(tmp)
            print(f"{area}: {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    show = set(a.show.split(","))
    for r in AUDIT.rows:
        if r["verdict"] in show:
            print(f"{r['verdict']:8s} {r['area']:6s} {r['target']:36s} {r['arg']:22s} {r['case']:28s} {r['detail'][:160]}")
    counts = {area: Counter(r["verdict"] for r in AUDIT.rows if r["area"] == area) for area in areas}
    print(f"\n{'area':8s} {'calls':>6s} " + " ".join(f"{v:>8s}" for v in VERDICTS))
    for area, c in counts.items():
        print(f"{area:8s} {sum(c.values()):6d} " + " ".join(f"{c[v]:8d}" for v in VERDICTS))
    total = Counter(r["verdict"] for r in AUDIT.rows)
    print(f"{'all':8s} {sum(total.values()):6d} " + " ".join(f"{total[v]:8d}" for v in VERDICTS))
    print(f"wall {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if a.out:
        out = dict(rows=AUDIT.rows) if a.full else summary(AUDIT.rows)
        out = dict(counts={k: dict(v) for k, v in counts.items()}, **out)
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
