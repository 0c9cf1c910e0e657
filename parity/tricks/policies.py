"""Registry entries: the AutoAugment-family ops and policies (group "policies", like the backend
modules :mod:`torch_impl.policies` / :mod:`jax_impl.policies`).

One entry per op (``aa_<op>``: :mod:`torch_impl.ops` vs :mod:`jax_impl.ops` on uint8 images with
per-image magnitudes, exact) and one per policy (``autoaugment_<policy>``: the same parameter
record through :func:`torch_impl.autoaugment` and :func:`jax_impl.autoaugment`, exact on uint8),
plus ``autoaugment_float`` for float images (a tolerance, see its reason), and one per other
family (``randaugment``, ``trivialaugment_wide``, ``augmix``: the same record through both
backends' kernels, exact on uint8; ``policy_families_float`` for float images,
``policy_families_bilinear`` for bilinear geometric ops: see its reason). Agreement with
torchvision itself is in ``tests/test_ops.py`` and ``tests/test_policies.py``.

The jax ops run eagerly, so their magnitudes are concrete: the geometric matrices are the
host-computed float64 ones (``jax_impl.ops.rotate`` under ``jit`` uses float32 trig instead; that
path is bounded in ``tests/test_ops.py``).
"""

from __future__ import annotations

import numpy as np

from parity import strategies as S
from parity.convert import images_from_jax, images_from_torch, images_to_jax, images_to_torch, to_jax, to_torch
from parity.compare import Check
from twintricks.policies import FAMILIES, POLICY_NAMES, magnitude_bins

__all__ = ["CHECKS"]


def _op_runner(op: str, backend: str):
    kind = S.AUTOAUGMENT_OPS[op][1]

    def run(case):
        if backend == "torch":
            import torch_impl.ops as O

            images, convert, back = images_to_torch(case["images"]), to_torch, images_from_torch
        else:
            import jax_impl.ops as O

            images, convert, back = images_to_jax(case["images"]), to_jax, images_from_jax
        fn = getattr(O, op)
        if kind is None:
            out = fn(images)
        elif kind == "geometric":
            out = fn(images, convert(case["magnitude"]), fill=case["fill"])
        else:
            out = fn(images, convert(case["magnitude"]))
        return {"images": back(out)}

    return run


def _policy_runner(backend: str):
    def run(case):
        p = case["params"]
        if backend == "torch":
            import torch_impl.policies as A

            params = A.AutoAugmentParams(to_torch(p["sub_policy"]), to_torch(p["apply"]), to_torch(p["negate"]))
            out = A.autoaugment(images_to_torch(case["images"]), params, policy=case["policy"], fill=case["fill"])
            return {"images": images_from_torch(out)}
        import jax_impl.policies as A

        params = A.AutoAugmentParams(
            to_jax(p["sub_policy"].astype(np.int32)), to_jax(p["apply"]), to_jax(p["negate"])
        )
        out = A.autoaugment(images_to_jax(case["images"]), params, policy=case["policy"], fill=case["fill"])
        return {"images": images_from_jax(out)}

    return run


def _op_cases(op):
    return lambda: S.autoaugment_op_cases(op)


def _policy_cases(policy, dtype=np.uint8):
    return lambda: S.autoaugment_policy_cases(policy, dtype=dtype)


def _all_bins_example(op: str) -> dict:
    """Every magnitude bin and sign of ``op`` on one 15×16 RGB batch (19 images; ties in the shears)."""
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (19, 15, 16, 3), dtype=np.uint8)
    images[::2] = images[::2] // 64 * 64  # few levels: ties in the blends, flat channels
    case = dict(images=images)
    tv_name, kind = S.AUTOAUGMENT_OPS[op]
    if kind is not None:
        bins = list(magnitude_bins(tv_name, 15, 16))
        values = bins + [-b for b in bins[1:]] if kind in ("geometric", "enhance") else (bins * 2)[:19]
        case["magnitude"] = np.asarray(values, np.int64 if kind == "bits" else np.float32)
    if kind == "geometric":
        case["fill"] = 0
    return case


_OP_REASON = "uint8 in, uint8 out: the same float32 roundings (FMA where torch fuses) give identical bytes"

CHECKS = [
    Check(
        name=f"aa_{op}",
        group="policies",
        cases=_op_cases(op),
        run_torch=_op_runner(op, "torch"),
        run_jax=_op_runner(op, "jax"),
        atol=0,
        rtol=0,
        reason=_OP_REASON,
        examples=(_all_bins_example(op),),
    )
    for op in S.AUTOAUGMENT_OPS
] + [
    Check(
        name=f"autoaugment_{policy}",
        group="policies",
        trick="autoaugment",
        cases=_policy_cases(policy),
        run_torch=_policy_runner("torch"),
        run_jax=_policy_runner("jax"),
        atol=0,
        rtol=0,
        reason="uint8: every op is exact, the per-image selection is integer logic",
    )
    for policy in POLICY_NAMES
] + [
    Check(
        name="autoaugment_float",
        group="policies",
        trick="autoaugment",
        cases=lambda: S.autoaugment_policy_cases(None, dtype=np.float32),
        run_torch=_policy_runner("torch"),
        run_jax=_policy_runner("jax"),
        atol=1e-6,
        rtol=0,
        reason=(
            "float32 images in [0, 1]: the grayscale mean (Contrast) and the 3x3 smoothing (Sharpness) "
            "sum in a different order than torch's mean/conv2d, and arbitrary floats cannot be split into "
            "exact partial products, so a value can differ by an ulp or two (<= 2.4e-7 at 1.0)"
        ),
    )
]


#: the recipe trick (:data:`twintricks.tricks.TRICKS`) each family's check proves
FAMILY_TRICKS = {"randaugment": "randaugment", "trivialaugment_wide": "trivialaugment", "augmix": "augmix"}

_RECORDS = {
    "randaugment": ("RandAugmentParams", ("op", "negate")),
    "trivialaugment_wide": ("TrivialAugmentWideParams", ("op", "magnitude", "negate")),
    "augmix": ("AugMixParams", ("op", "magnitude", "negate", "depth", "weights")),
}


def _family_runner(backend: str):
    def run(case):
        family, p = case["family"], case["params"]
        cls_name, fields = _RECORDS[family]
        if backend == "torch":
            import torch_impl.policies as A

            record = getattr(A, cls_name)(*(to_torch(p[f]) for f in fields))
            images, back = images_to_torch(case["images"]), images_from_torch
        else:
            import jax_impl.policies as A

            record = getattr(A, cls_name)(
                *(to_jax(p[f].astype(np.int32) if p[f].dtype == np.int64 else p[f]) for f in fields)
            )
            images, back = images_to_jax(case["images"]), images_from_jax
        out = getattr(A, family)(images, record, fill=case["fill"], **case["kwargs"])
        return {"images": back(out)}

    return run


def _family_cases(family, dtype=np.uint8):
    return lambda: S.policy_family_cases(family, dtype=dtype)


def _float_family_cases():
    from hypothesis import strategies as st

    shapes = S.POLICY_FAMILY_SHAPES[:1]
    return st.sampled_from(FAMILIES).flatmap(lambda f: S.policy_family_cases(f, dtype=np.float32, shapes=shapes))


_FAMILY_REASONS = {
    "randaugment": "uint8: every op is exact (the AutoAugment ops with RandAugment's bins), the per-image selection is integer logic",
    "trivialaugment_wide": "uint8: every op is exact on TrivialAugmentWide's wide bins too (shear 0.99, rotate 135°, 2-bit Posterize)",
    "augmix": (
        "uint8: the chains are exact; the mixing is the same float32 products and sums in the same order in both "
        "(each product rounded before its sum: jax splits it into exact partial products), then truncated"
    ),
}

def _bilinear_cases():
    """AugMix's uint8 cases with ``interpolation="bilinear"``: its chains draw every geometric op (and
    the other ops and the mixing after them); one shape, one family: each is one more jax compile
    (TrivialAugmentWide's every geometric bin: ``tests/test_bilinear.py``)."""
    return S.policy_family_cases("augmix", shapes=S.POLICY_FAMILY_SHAPES[:1]).map(
        lambda case: {**case, "kwargs": {**case["kwargs"], "interpolation": "bilinear"}}
    )


def _family_check(name: str, cases, atol: float, reason: str) -> Check:
    """A check of the families' kernels on other cases than each family's own (no recipe trick)."""
    return Check(name=name, group="policies", cases=cases, run_torch=_family_runner("torch"),
                 run_jax=_family_runner("jax"), atol=atol, rtol=0, reason=reason)


CHECKS += [
    Check(
        name=family,
        group="policies",
        trick=FAMILY_TRICKS[family],
        cases=_family_cases(family),
        run_torch=_family_runner("torch"),
        run_jax=_family_runner("jax"),
        atol=0,
        rtol=0,
        reason=_FAMILY_REASONS[family],
    )
    for family in FAMILIES
] + [
    _family_check(
        "policy_families_float",
        _float_family_cases,
        1e-6,
        "float32 images in [0, 1]: as autoaugment_float (Contrast's mean and Sharpness's smoothing sum in "
        "another order than torch's, arbitrary floats have no exact split), and AugMix's weighted sum "
        "carries such an ulp through at most 1 + W products and sums (<= 1e-6 at 1.0)",
    ),
    _family_check(
        "policy_families_bilinear",
        _bilinear_cases,
        1,
        "uint8, bilinear geometric ops: torch is torchvision's grid_sample; jax emulates its fused "
        "multiply-adds with exact.fma (Sum2), correctly rounded unless an exact sum lies within ~2^-40 "
        "of a float32 midpoint, where the float32 value is one ulp off and a pixel at a .5 boundary "
        "rounds one level away. Measured: 0 differing uint8 pixels on every geometric op and bin "
        "(tests/test_bilinear.py); float32 values: 8 of 513,360 one ulp off in a probe of the ops",
    ),
]
