"""The registry's entries, one module per family, named like the backend modules they check.

Each module defines ``TRICKS``, a list of :class:`parity.registry.Trick`; this package
concatenates them in a fixed order. To add a trick, add one entry to its family's module.
"""

from parity.tricks import cropping, erasing, losses, mixing, optim, policies

__all__ = ["TRICKS"]

TRICKS = [*losses.TRICKS, *mixing.TRICKS, *cropping.TRICKS, *erasing.TRICKS, *optim.TRICKS, *policies.TRICKS]
