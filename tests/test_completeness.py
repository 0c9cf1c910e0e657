"""Every recipe trick has all of its entries: one id, declared once, found everywhere.

A trick of :data:`twintricks.tricks.TRICKS` is complete when

* both backends wire it: a :class:`~twintricks.tricks.TrickImpl` under its id in ``TRICK_IMPLS``
  of ``torch_impl.<module>`` and of ``jax_impl.<module>`` (:attr:`Trick.module`), drawing exactly
  when the trick has a random stream;
* the parity registry proves it: at least one :class:`parity.compare.Check` with ``trick=<id>``;
* the bench times it: at least one :class:`twintricks_bench.cases.Row` with ``trick=<id>``;
* the README's trick table has a row with its id.

Nothing here runs a kernel: it reads the declarations (a few seconds, most of it importing the
backends).
"""

from __future__ import annotations

import pathlib
import re

import pytest

from twintricks.tricks import TRICKS, collect_impls

ROOT = pathlib.Path(__file__).resolve().parents[1]
IDS = [t.name for t in TRICKS]


def _readme_ids() -> set[str]:
    """The ids in the README trick table's id column (the second cell of each row)."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| trick | id |", 1)[1].split("\n\n", 1)[0]
    return {i for line in table.splitlines()[2:] for i in re.findall(r"`([a-z0-9_]+)`", line.split("|")[2])}


@pytest.fixture(scope="module")
def declared():
    from parity.registry import library_registry
    from twintricks_bench.rows import ROWS

    return {
        "torch_impl": dict(collect_impls("torch_impl")),
        "jax_impl": dict(collect_impls("jax_impl")),
        "checks": list(library_registry()),
        "rows": list(ROWS.values()),
        "readme": _readme_ids(),
    }


def missing_entries(trick, declared) -> list[str]:
    """What the recipe trick ``trick`` lacks, one line per missing entry (empty: complete)."""
    out = []
    for package in ("torch_impl", "jax_impl"):
        impl = declared[package].get(trick.name)
        if impl is None:
            out.append(f"{package}.{trick.module}.TRICK_IMPLS[{trick.name!r}] (a twintricks.tricks.TrickImpl)")
        elif (impl.sample is None) != (trick.stream is None):
            draws = "draws (it has a stream)" if trick.stream is not None else "draws nothing (it has no stream)"
            out.append(f"{package}.{trick.module}.TRICK_IMPLS[{trick.name!r}].sample: the trick {draws}")
    if not any(c.trick == trick.name for c in declared["checks"]):
        out.append(f"a parity check with trick={trick.name!r} in parity/tricks/<family>.py (CHECKS)")
    if not any(r.trick == trick.name for r in declared["rows"]):
        out.append(f"a bench row with trick={trick.name!r} in twintricks_bench/rows/<family>.py (ROWS)")
    if trick.name not in declared["readme"]:
        out.append(f"a row of the README's trick table with `{trick.name}` in its id column")
    return out


@pytest.mark.parametrize("trick", TRICKS, ids=IDS)
def test_every_recipe_trick_has_all_of_its_entries(trick, declared):
    missing = missing_entries(trick, declared)
    assert not missing, f"recipe trick {trick.name!r} lacks " + "; and ".join(missing)


def test_every_trick_a_check_or_row_names_is_a_recipe_trick(declared):
    """A typo in ``trick=`` would leave the trick unproved while the check still ran."""
    unknown = lambda entry: entry.trick is not None and entry.trick not in IDS  # noqa: E731
    bad = [f"parity check {c.name!r}: trick={c.trick!r}" for c in declared["checks"] if unknown(c)]
    bad += [f"bench row {r.name!r}: trick={r.trick!r}" for r in declared["rows"] if unknown(r)]
    bad += [f"README trick table: id `{i}`" for i in sorted(declared["readme"] - set(IDS))]
    assert not bad, "not a recipe trick id: " + "; ".join(bad)


def test_the_trainers_run_the_collected_entries():
    """The trainers run what was collected beside the kernels, nothing of their own; a trick
    without an entry is refused by name when it is looked up."""
    from jax_impl import train as jtrain
    from torch_impl import train as ttrain

    assert ttrain.TRICK_IMPLS == collect_impls("torch_impl") and list(ttrain.TRICK_IMPLS) == IDS
    assert jtrain.TRICK_IMPLS == collect_impls("jax_impl") and list(jtrain.TRICK_IMPLS) == IDS
    partial = type(ttrain.TRICK_IMPLS)("torch_impl", {})
    with pytest.raises(LookupError, match=r"add torch_impl.erasing.TRICK_IMPLS\['cutout'\]"):
        partial["cutout"]


def test_the_check_fails_for_each_missing_entry(declared):
    """The check above can fail: remove each kind of entry of one trick in turn."""
    import dataclasses

    trick = next(t for t in TRICKS if t.name == "cutout")
    assert missing_entries(trick, declared) == []
    torch_impls, jax_impls = declared["torch_impl"], declared["jax_impl"]
    untagged = lambda entries: [dataclasses.replace(e, trick=None) if e.trick == "cutout" else e for e in entries]  # noqa: E731
    cases = {
        "torch_impl.erasing.TRICK_IMPLS['cutout']": {"torch_impl": {k: v for k, v in torch_impls.items() if k != "cutout"}},
        "jax_impl.erasing.TRICK_IMPLS['cutout']": {"jax_impl": {k: v for k, v in jax_impls.items() if k != "cutout"}},
        "TRICK_IMPLS['cutout'].sample": {"torch_impl": {**torch_impls, "cutout": torch_impls["cutout"]._replace(sample=None)}},
        "a parity check with trick='cutout'": {"checks": untagged(declared["checks"])},
        "a bench row with trick='cutout'": {"rows": untagged(declared["rows"])},
        "README's trick table with `cutout`": {"readme": declared["readme"] - {"cutout"}},
    }
    for what, change in cases.items():
        missing = missing_entries(trick, {**declared, **change})
        assert len(missing) == 1 and what in missing[0], (what, missing)


# ----------------------------------------------------------------------------- exports, written once


@pytest.mark.parametrize("package", ["torch_impl", "jax_impl"])
def test_a_package_exports_its_modules_all_once(package):
    """The package's ``__all__`` is its modules' ``__all__``s (:data:`MODULES`), each name once,
    plus the submodules and policy tables; every name resolves."""
    import importlib

    pkg = importlib.import_module(package)
    from_modules = [n for m in pkg.MODULES for n in importlib.import_module(f"{package}.{m}").__all__]
    assert pkg.__all__ == from_modules + ["POLICIES", "OPS", "ops", "models", "data", "train"]
    assert len(set(pkg.__all__)) == len(pkg.__all__)
    assert all(hasattr(pkg, n) for n in pkg.__all__)


def test_the_readme_names_only_exported_functions():
    """Every function, class or record the README's trick table names is exported by a backend."""
    import jax_impl
    import torch_impl

    text = (ROOT / "README.md").read_text()
    table = text.split("| trick | id |", 1)[1].split("\n\n", 1)[0]
    named = {n for line in table.splitlines()[2:] for n in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", line.split("|")[4])}
    exported = set(torch_impl.__all__) | set(jax_impl.__all__)
    assert named and not named - exported, sorted(named - exported)
