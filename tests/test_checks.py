"""twintricks.checks: the framework-free argument checks both backends use."""

import numpy as np
import pytest

from twintricks import checks


def test_check_real():
    assert checks.check_real("alpha", 1) == 1.0
    with pytest.raises(TypeError, match="`alpha` must be a real number"):
        checks.check_real("alpha", "1")
    with pytest.raises(TypeError, match="`alpha`"):
        checks.check_real("alpha", True)
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number in \[0.0, inf\), got -0.5"):
        checks.check_real("alpha", -0.5, low=0.0)
    with pytest.raises(ValueError, match=r"`t` must be a finite number in \(0.0, inf\)"):
        checks.check_real("t", 0.0, low=0.0, low_inclusive=False)
    with pytest.raises(ValueError, match="`p`"):
        checks.check_real("p", float("nan"), low=0.0, high=1.0)
    assert checks.check_real("p", np.float32(0.5), low=0.0, high=1.0) == 0.5


@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), np.float32("inf"), float("nan")])
@pytest.mark.parametrize("interval", [{}, dict(low=0.0), dict(high=1.0), dict(low=0.0, low_inclusive=False)])
def test_check_real_rejects_non_finite_by_default(bad, interval):
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number in .*, got -?(inf|nan)"):
        checks.check_real("alpha", bad, **interval)


def test_check_real_finite_false_opts_in_to_infinities():
    assert checks.check_real("fill", float("inf"), finite=False) == float("inf")
    assert checks.check_real("upper", float("inf"), low=0.0, finite=False) == float("inf")
    assert checks.check_real("lower", -float("inf"), high=0.0, finite=False) == -float("inf")
    with pytest.raises(ValueError, match=r"`upper` must be in \[0.0, inf\], got -inf"):
        checks.check_real("upper", -float("inf"), low=0.0, finite=False)
    with pytest.raises(ValueError, match="`fill`"):  # NaN is never a value
        checks.check_real("fill", float("nan"), finite=False)


def test_check_ordered_pair_rejects_non_finite():
    with pytest.raises(ValueError, match=r"`ratio\[1\]` must be a finite number"):
        checks.check_ordered_pair("ratio", (0.5, float("inf")), low=0.0, strict_low=True)


def test_check_int():
    assert checks.check_int("n", np.int64(3), low=0) == 3
    with pytest.raises(TypeError, match="`n` must be an integer"):
        checks.check_int("n", 2.0)
    with pytest.raises(ValueError, match=r"`n` must be in \[0, inf\], got -1"):
        checks.check_int("n", -1, low=0)


def test_check_ordered_pair():
    assert checks.check_ordered_pair("scale", (0.08, 1.0), low=0.0) == (0.08, 1.0)
    with pytest.raises(ValueError, match="`scale` must be ordered"):
        checks.check_ordered_pair("scale", (1.0, 0.08))
    with pytest.raises(TypeError, match="`ratio` must be a pair"):
        checks.check_ordered_pair("ratio", 0.5)
    with pytest.raises(ValueError, match=r"`ratio\[0\]`"):
        checks.check_ordered_pair("ratio", (0.0, 1.0), low=0.0, strict_low=True)


def test_check_choice_ndim_size_leading():
    assert checks.check_choice("reduction", "mean", ("mean", "sum", "none")) == "mean"
    with pytest.raises(ValueError, match="`policy` must be one of"):
        checks.check_choice("policy", "cifar100", ("imagenet", "cifar10", "svhn"))
    with pytest.raises(ValueError, match=r"`images` must be a 4-D array \[N, C, H, W\], got shape \(3, 8, 8\)"):
        checks.check_ndim("images", np.zeros((3, 8, 8)), 4, "[N, C, H, W]")
    with pytest.raises(TypeError, match="`images` must be an array"):
        checks.check_ndim("images", [1, 2], 1)
    assert checks.check_size("size", 7) == (7, 7)
    assert checks.check_size("size", (3, 5)) == (3, 5)
    with pytest.raises(ValueError, match=r"`size\[1\]`"):
        checks.check_size("size", (3, 0))
    assert checks.check_same_leading(["a", "b"], [np.zeros((4, 2)), np.zeros(4)]) == 4
    with pytest.raises(ValueError, match="batch sizes must match"):
        checks.check_same_leading(["images", "labels"], [np.zeros((4, 2)), np.zeros(3)])
