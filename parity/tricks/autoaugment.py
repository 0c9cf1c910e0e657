"""Registry entries: autoaugment."""

TRICKS: list = []
