"""The ``twintricks`` command line: ``parity``, ``train``, ``bench`` and ``data`` subcommands.

Each subcommand's module adds its own parser (``add_parser``) and runs it (``run``); this module
only wires them together. Backends are imported lazily, when a subcommand needs them.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _add_parity(sub) -> None:
    p = sub.add_parser(
        "parity",
        help="check that torch_impl and jax_impl compute the same thing, trick by trick",
        description="Runs every registered trick's cross-framework check on hypothesis-drawn "
        "inputs and prints one row per trick. Exits 1 when any trick disagrees. With --checks, "
        "runs your own checks (functions, modules, optimizers; see the README's 'Check your own "
        "port') with the same table and exit code.",
    )
    p.add_argument("--trick", action="append", metavar="NAME",
                   help="only this recipe trick's checks (its id, e.g. crop_flip), or only the check of this name "
                   "(e.g. hflip); repeatable; default: all")
    p.add_argument("--examples", type=int, default=10, metavar="N", help="drawn examples per trick (default 10)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="hypothesis seed (default 0)")
    p.add_argument("--list", action="store_true", help="list the registered tricks and exit")
    p.add_argument(
        "--checks",
        action="append",
        metavar="MODULE",
        help="run the checks a module of yours declares instead of the library's (repeatable): an "
        "importable module (e.g. mypkg.parity_checks) defining CHECKS = [...] or register(registry); "
        "see parity.registry.load_checks",
    )
    p.set_defaults(func=_run_parity)


def _run_parity(args) -> int:
    from parity.registry import Registry, library_registry, load_checks, run_seeded

    if args.examples < 1:
        raise SystemExit("twintricks parity: --examples must be >= 1")
    if args.checks:
        import os

        sys.path.insert(0, os.getcwd())  # a module next to the caller imports, as with `python -m`
        registry = Registry()
        try:
            for module in args.checks:
                for trick in load_checks(module):
                    registry.add(trick)
        except (ImportError, ValueError, TypeError) as exc:
            raise SystemExit(f"twintricks parity: --checks: {type(exc).__name__}: {exc}") from None
        finally:
            sys.path.remove(os.getcwd())
    else:
        registry = library_registry()
    if args.list:
        for t in registry:
            print(f"{t.name:30s} {t.group:12s} {t.trick or '-':16s} {t.tolerance:24s} {t.reason}")
        return 0
    try:
        tricks = registry.select(args.trick) if args.trick else list(registry)
    except ValueError as exc:
        raise SystemExit(f"twintricks parity: {exc}") from None
    header = f"{'trick':30s} {'group':12s} {'checks':>7s} {'examples':>8s} {'elements':>10s} {'max abs err':>12s} {'tolerance':>22s}  verdict"
    print(header)
    print("-" * len(header))
    failed = []
    for trick in tricks:
        r = run_seeded(trick, examples=args.examples, seed=args.seed)
        verdict = "agree" if r.ok else "DISAGREE"
        print(
            f"{r.name:30s} {r.group:12s} {r.checks:7d} {r.examples:8d} {r.elements:10d} {r.max_abs_err:12.3g} "
            f"{r.tolerance:>22s}  {verdict}",
            flush=True,
        )
        if not r.ok:
            failed.append(r)
    for r in failed:
        print(f"\n{r.name}: {r.failure}")
    print(f"\n{len(tricks) - len(failed)} of {len(tricks)} tricks agree")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``twintricks`` console script; returns the exit status."""
    from twintricks_bench import harness as bench
    from twintricks_cli import data as data_sets
    from twintricks_cli import train as training

    parser = argparse.ArgumentParser(prog="twintricks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parity(sub)
    training.add_parser(sub)
    bench.add_parser(sub)
    data_sets.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
