"""Registry entries: spatial."""

TRICKS: list = []
