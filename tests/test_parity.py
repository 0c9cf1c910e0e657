"""Kernel parity for every registered check: one hypothesis-drawn case through both packages.

This is the parametrized half of the registry (the CLI is the other): adding a check to
``parity.tricks`` adds its parity test here. The tolerance of each check is stated, with its
reason, in its entry; ``test_registry_entries_are_documented`` keeps it that way.
"""

import pytest
from hypothesis import example, given

from parity.registry import all_checks, check_case

CHECKS = all_checks()


@pytest.mark.parametrize("name", list(CHECKS))
def test_kernel_parity(name):
    check = CHECKS[name]

    @given(check.cases())
    def body(case):
        check_case(check, case)

    for case in reversed(check.examples):
        body = example(case)(body)
    body()


@pytest.mark.parametrize("name", list(CHECKS))
def test_registry_entries_are_documented(name):
    check = CHECKS[name]
    assert check.atol >= 0 and check.rtol >= 0
    assert len(check.reason.strip()) >= 10, f"{name}: the tolerance needs its reason"
    assert check.group in {"losses", "mixing", "cropping", "erasing", "optim", "policies"}


def test_every_family_is_registered():
    groups = {t.group for t in CHECKS.values()}
    assert groups >= {"losses", "mixing", "cropping", "erasing", "optim", "policies"}


def test_a_recipe_trick_id_selects_all_of_its_checks():
    """``twintricks parity --trick ID`` runs every check of the trick; a check's own name still
    selects it; anything else is refused naming both vocabularies."""
    from parity.registry import library_registry

    registry = library_registry()
    assert [c.name for c in registry.select(["crop_flip"])] == ["resized_crop", "hflip"]
    assert [c.name for c in registry.select(["hflip", "trivialaugment"])] == ["hflip", "trivialaugment_wide"]
    assert {c.name for c in registry.select(["cutmix"])} == {"cutmix", "cutmix_targets", "mixup_cutmix", "mixup_cutmix_uint8"}
    with pytest.raises(ValueError, match="unknown trick 'nope': neither a recipe trick"):
        registry.select(["nope"])
