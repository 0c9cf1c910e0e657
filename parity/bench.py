"""The ``twintricks bench`` subcommand — to be written."""


def add_parser(sub) -> None:
    """Add this subcommand's parser to the ``twintricks`` subparsers (not yet)."""
