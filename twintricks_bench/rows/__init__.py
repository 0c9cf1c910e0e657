"""The rows ``twintricks bench`` times, one module per family, named like the backend modules.

Each module declares ``ROWS``, a list of :class:`~twintricks_bench.cases.Row`: its name, its
title and a one-line description of the job for ``bench.md``, the function that builds its cases,
and the id of the recipe trick it times (:data:`twintricks.tricks.TRICKS`;
``tests/test_completeness.py`` fails when a recipe trick has no row). A row's cases are ours
(torch_impl eager and compiled, jax_impl jitted) first, then the existing implementations doing
the same job (``same_job=False`` and a note for a cheaper, different job). This package collects
the rows in table order; to add a row, add one entry to its family's module.
"""

from __future__ import annotations

from twintricks_bench.cases import Case, Context, Row
from twintricks_bench.rows import cropping, erasing, losses, mixing, optim, policies

__all__ = ["ROWS", "ROW_NAMES", "ROW_DOCS", "ROW_TITLES", "POLICY_ROWS", "collect_rows", "cases_for", "rows_of"]


def collect_rows(rows) -> dict[str, Row]:
    """``rows`` by name, in order (ValueError for a name defined twice)."""
    out: dict[str, Row] = {}
    for r in rows:
        if r.name in out:
            raise ValueError(f"bench row {r.name!r} is defined twice")
        out[r.name] = r
    return out


#: The rows by name, in table order.
ROWS: dict[str, Row] = collect_rows([*losses.ROWS, *mixing.ROWS, *erasing.ROWS, *cropping.ROWS, *policies.ROWS, *optim.ROWS])
#: Row names, in table order.
ROW_NAMES: tuple[str, ...] = tuple(ROWS)
#: One line per row for ``bench.md``.
ROW_DOCS: dict[str, str] = {r.name: r.doc for r in ROWS.values()}
#: How ``bench.md`` and ``bench.png`` show each row.
ROW_TITLES: dict[str, str] = {r.name: r.title for r in ROWS.values()}
#: The per-image policies, whose goal is a multiple of torchvision applying them image by image.
POLICY_ROWS: tuple[str, ...] = tuple(r.name for r in policies.ROWS)


def rows_of(trick: str) -> list[str]:
    """The names of the rows that time the recipe trick ``trick`` (its id)."""
    return [r.name for r in ROWS.values() if r.trick == trick]


def cases_for(ctx: Context, rows) -> list[Case]:
    """Every case of the given rows at ``ctx``'s size, in table order."""
    out: list[Case] = []
    for name in rows:
        out.extend(ROWS[name].cases(ctx))
    return out
