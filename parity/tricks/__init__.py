"""The registry's entries, one module per family of tricks.

Each module defines ``TRICKS``, a list of :class:`parity.registry.Trick`; this package
concatenates them in a fixed order. To add a trick, add one entry to its family's module.
"""

from parity.tricks import autoaugment, losses, optim, spatial

TRICKS = [*losses.TRICKS, *spatial.TRICKS, *optim.TRICKS, *autoaugment.TRICKS]
