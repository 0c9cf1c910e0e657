"""Registry entries: optim."""

TRICKS: list = []
