"""Registry entries: losses."""

TRICKS: list = []
