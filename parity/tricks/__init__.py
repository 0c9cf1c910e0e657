"""The library's parity checks, one module per family, named like the backend modules they check.

Each module defines ``CHECKS``, a list of :class:`parity.compare.Check` (as a user's checks
module does, :func:`parity.registry.load_checks`); this package concatenates them in a fixed
order and :func:`parity.registry.library_registry` collects them. A check of a recipe trick
names it in ``trick``: ``tests/test_completeness.py`` fails when a recipe trick has none. To add a
check, add one entry to its family's module.
"""

from parity.tricks import cropping, erasing, losses, mixing, optim, policies

__all__ = ["CHECKS"]

CHECKS = [*losses.CHECKS, *mixing.CHECKS, *cropping.CHECKS, *erasing.CHECKS, *optim.CHECKS, *policies.CHECKS]
