"""Kernel parity for every registered trick: one hypothesis-drawn case through both packages.

This is the parametrized half of the registry (the CLI is the other): adding a trick to
``parity.tricks`` adds its parity test here. The tolerance of each trick is stated, with its
reason, in its registry entry; ``test_registry_entries_are_documented`` keeps it that way.
"""

import pytest
from hypothesis import example, given

from parity.registry import all_tricks, check_case

TRICKS = all_tricks()


@pytest.mark.parametrize("name", list(TRICKS))
def test_kernel_parity(name):
    trick = TRICKS[name]

    @given(trick.cases())
    def body(case):
        check_case(trick, case)

    for case in reversed(trick.examples):
        body = example(case)(body)
    body()


@pytest.mark.parametrize("name", list(TRICKS))
def test_registry_entries_are_documented(name):
    trick = TRICKS[name]
    assert trick.atol >= 0 and trick.rtol >= 0
    assert len(trick.reason.strip()) >= 10, f"{name}: the tolerance needs its reason"
    assert trick.group in {"losses", "mixing", "cropping", "erasing", "optim", "policies"}


def test_every_family_is_registered():
    groups = {t.group for t in TRICKS.values()}
    assert groups >= {"losses", "mixing", "cropping", "erasing", "optim", "policies"}
