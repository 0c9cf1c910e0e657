"""The ``twintricks bench`` subcommand: every trick and the training step, timed in torch_impl
(eager and ``torch.compile``), jax_impl (``jax.jit``) and the libraries people use today.

It writes ``bench.json`` (every figure with its spread and the machine), ``bench.md`` (a table
per size: rows = tricks, columns = implementations, cells = images/s) and ``bench.png`` (a bar
chart, log scale). A trick whose implementation is missing is reported as ``n/a (...)``; one
that fails is reported as ``error: ...``; neither stops the run.

What is timed is described in :mod:`twintricks_bench.cases`; how, in :mod:`twintricks_bench.timing`.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from twintricks.files import atomic_write_bytes
from twintricks_bench.cases import IMPLS, OURS, SIZES, TINY_SIZES, Case, Context, NotAvailable
from twintricks_bench.rows import POLICY_ROWS, ROW_NAMES, ROW_TITLES, ROWS, cases_for
from twintricks_bench.rows import ROW_DOCS as TRICK_DOCS
from twintricks_bench.timing import Budget, MemoryProbe, Timer, add_jax_info, loadavg, machine_info, sync_for

__all__ = ["add_parser", "run", "BUDGETS"]

from twintricks_bench.train import TRAIN, TRAIN_DOCS, TRAIN_TRICKS, training_cases
from twintricks.threads import set_threads

TRAIN_ROWS = (TRAIN, TRAIN_TRICKS)
ROW_DOCS = {**TRICK_DOCS, **TRAIN_DOCS}


def _title(row: str) -> str:
    """How bench.md and bench.png show a row (the training rows are their own titles)."""
    return ROW_TITLES.get(row, row)

BUDGETS = {
    "full": Budget(warmup=1, min_repeats=3, max_repeats=30, seconds=1.5, rounds=3),
    "quick": Budget(warmup=1, min_repeats=3, max_repeats=5, seconds=0.2),
    "tiny": Budget(warmup=0, min_repeats=2, max_repeats=2, seconds=0.0, group_seconds=0.0),
}
#: Default wall-clock limits (s): no case starts after them (cases still to run are reported as
#: skipped), and a torch.compile case needs 60 s (a training step 120 s) left to start.
TIME_LIMITS = {"full": 540.0, "quick": 100.0, "tiny": None}


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def add_parser(sub) -> None:
    """Add the ``bench`` subcommand to the ``twintricks`` subparsers."""
    p = sub.add_parser(
        "bench",
        help="time every trick and the training step in torch_impl, jax_impl and existing libraries",
        description="Times each trick (sampling + applying) at CIFAR size (batch 256, 3x32x32) and "
        "ImageNet size (batch 32, 3x224x224) in torch_impl eager, torch_impl under torch.compile "
        "and jax_impl under jax.jit, beside torchvision v2, timm, torch and optax doing the same job, "
        "and the training step of the default model in both frameworks. Writes bench.json, "
        "bench.md and bench.png to --out.",
    )
    p.add_argument("--out", default="bench", metavar="DIR", help="output directory (default ./bench)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats, no torch.compile columns unless --compile, and only the default training "
        "recipe (about two minutes on a 2-core CPU)",
    )
    p.add_argument("--size", choices=("cifar", "imagenet", "both"), default="both", help="input size (default both)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="only these rows: a row's name or a recipe trick's id (all of its rows), or a case-insensitive "
        "prefix of the rows' names or titles; rows: " + ", ".join(ROW_NAMES)
        + f", {', '.join(TRAIN_ROWS)}; e.g. --only mixup autoaugment",
    )
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="where both frameworks run (default: cuda if torch sees a GPU, else cpu)",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="time torch.compile columns (default: on, off with --quick)",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="S",
        help="start no case after S seconds (the rest are reported as skipped); default 540, 100 with --quick",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for both frameworks (torch.set_num_threads and XLA's intra-op pool); "
        "default: each framework's own default (all cores)",
    )
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    # Tiny sizes and a single repeat, for the test suite (also TWINTRICKS_BENCH_TINY=1).
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _select(only) -> list[str]:
    """The rows ``--only`` names: each word is a row's name or a recipe trick's id (all of its rows,
    e.g. ``cutmix``), else a case-insensitive prefix of row names or titles (``mix``, ``"random
    erasing"``, a title of before the ids: ``AutoAugment``)."""
    names = [*ROW_NAMES, *TRAIN_ROWS]
    if not only:
        return names
    chosen = []
    for want in only:
        norm = lambda x: x.lower().replace("-", " ").replace("_", " ")  # noqa: E731
        w = norm(want)
        hits = [n for n in names if n == want or ROWS.get(n) and ROWS[n].trick == want] or [
            n for n in names if w in (norm(n), norm(_title(n)))
        ] or [
            n for n in names
            if any(x.startswith(w) or x.replace(" ", "").startswith(w.replace(" ", "")) for x in (norm(n), norm(_title(n))))
        ]
        if not hits:
            raise SystemExit(f"twintricks bench: --only {want!r} matches none of: {', '.join(names)}")
        chosen.extend(h for h in hits if h not in chosen)
    return [n for n in names if n in chosen]


def _fmt_rate(x) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def _record(case: Case, ctx: Context) -> dict:
    return {
        "size": ctx.size.name,
        "trick": case.trick,
        "impl": case.impl,
        "framework": case.framework,
        "ours": case.ours,
        "same_job": case.same_job,
        "note": case.note,
        "batch": ctx.size.batch,
        "shape": [ctx.size.batch, 3, ctx.size.height, ctx.size.width],
        "status": "ok",
    }


def _failed(rec: dict, exc: Exception) -> None:
    """Mark ``rec`` as not timed: a missing implementation is n/a (or skipped), anything else an error."""
    if isinstance(exc, NotAvailable):
        msg = str(exc)
        rec["status"] = "skipped" if msg.startswith("skipped") else "n/a"
        rec["reason"] = msg
        return
    rec["status"] = "error"
    rec["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    rec["traceback"] = traceback.format_exc(limit=6)


def _start_case(case: Case, ctx: Context, budget: Budget, device: str) -> tuple[dict, Timer | None]:
    """Build ``case``, make its first call and warm it up (peak memory measured meanwhile)."""
    rec = _record(case, ctx)
    probe = None
    try:
        call = case.build()
        jax_dev = ctx.jax_device if case.framework == "jax" else None
        probe = MemoryProbe(case.framework, device, jax_dev)
        probe.start()
        in_flight = None if device == "cuda" else 2  # see twintricks_bench.timing's method
        timer = Timer(call, sync_for(case.framework, device), in_flight=in_flight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            timer.warm(budget, on_warm=probe.stop)
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        if probe is not None:
            probe.stop()
        _failed(rec, exc)
        return rec, None
    rec.update(peak_memory_bytes=probe.peak, memory_kind=probe.kind)
    return rec, timer


def _time_round(rec: dict, timer: Timer, budget: Budget) -> bool:
    """One round of ``rec``'s timed repeats; False (and ``rec`` marked) if a call failed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            timer.run(*budget.round_share())
    except Exception as exc:  # noqa: BLE001 - reported, never fatal
        _failed(rec, exc)
        return False
    return True


def _finish_case(rec: dict, timer: Timer, ctx: Context) -> None:
    t = timer.timing()
    secs = sorted(t.seconds)
    b = ctx.size.batch
    rec.update(
        seconds_median=t.median,
        seconds_min=secs[0],
        seconds_max=secs[-1],
        images_per_s=b / t.median,
        images_per_s_min=b / secs[-1],
        images_per_s_max=b / secs[0],
        repeats=len(secs),
        rounds=len(timer.round_medians),
        round_medians_s=timer.round_medians,
        calls_per_repeat=t.inner,
        first_call_s=t.first_s,
        loadavg=loadavg(),
    )


def _run_group(group: list[tuple[Case, Context]], budget: Budget, device: str, skip) -> list[dict]:
    """Time one row's cases of one phase together: each is built and warmed up, then the rounds
    of timed repeats alternate between them (see :mod:`twintricks_bench.timing`). ``skip(case)``
    gives a reason to leave a case out (the time limit), or None."""
    started = []
    for case, ctx in group:
        reason = skip(case)
        started.append((_skip_record(case, ctx, reason), None) if reason else _start_case(case, ctx, budget, device))
    for _ in range(budget.rounds):
        for rec, timer in started:
            if timer is not None and rec["status"] == "ok":
                _time_round(rec, timer, budget)
    for (rec, timer), (_, ctx) in zip(started, group):
        if timer is not None and rec["status"] == "ok":
            _finish_case(rec, timer, ctx)
    return [rec for rec, _ in started]


def _ratios(records: list[dict]) -> list[dict]:
    """Per size and trick, per framework: our best column / the fastest existing same-job one.

    The comparison is within the framework (torch_impl against torch, torchvision and timm;
    jax_impl against optax) where an existing implementation exists there, else against the
    fastest existing one in the other framework (``{fw}_cross`` is then true).
    """
    out = []
    sizes = sorted({r["size"] for r in records})
    for size in sizes:
        for trick in ROW_NAMES:
            rows = [r for r in records if r["size"] == size and r["trick"] == trick and r["status"] == "ok"]
            if not rows:
                continue
            existing = [r for r in rows if not r["ours"] and r["same_job"]]
            best_any = max(existing, key=lambda r: r["images_per_s"], default=None)
            entry = {"size": size, "trick": trick, "best_existing": best_any and best_any["impl"]}
            for fw, framework, impls in (("torch_impl", "torch", OURS[:2]), ("jax_impl", "jax", OURS[2:])):
                same = [r for r in existing if r["framework"] == framework]
                best = max(same, key=lambda r: r["images_per_s"], default=None) or best_any
                top = max((r for r in rows if r["impl"] in impls), key=lambda r: r["images_per_s"], default=None)
                entry[f"{fw}_best"] = top and top["impl"]
                entry[f"{fw}_vs"] = best and best["impl"]
                entry[f"{fw}_cross"] = bool(best) and not same
                entry[f"{fw}_ratio"] = top["images_per_s"] / best["images_per_s"] if (top and best) else None
            out.append(entry)
    return out


def goal_rows(result: dict) -> list[dict]:
    """The issue's goals against the measured ratios: one row per size, trick and framework."""
    gpu = result["machine"].get("torch_device", "cpu").startswith("cuda")
    rows = []
    for x in result.get("ratios", []):
        target = (50.0 if gpu else 10.0) if x["trick"] in POLICY_ROWS else 1 / 1.5
        for fw in ("torch_impl", "jax_impl"):
            ratio = x.get(f"{fw}_ratio")
            rows.append(
                {
                    "size": x["size"],
                    "trick": x["trick"],
                    "framework": fw,
                    "ours": x.get(f"{fw}_best"),
                    "vs": x.get(f"{fw}_vs"),
                    "ratio": ratio,
                    "target": target,
                    "met": None if ratio is None else ratio >= target,
                }
            )
    return rows


def _cell(r: dict | None) -> str:
    if r is None:
        return ""
    if r["status"] == "ok":
        mark = "" if r["same_job"] else " †"
        return f"{_fmt_rate(r['images_per_s'])} [{_fmt_rate(r['images_per_s_min'])}–{_fmt_rate(r['images_per_s_max'])}]{mark}"
    if r["status"] == "n/a":
        return f"n/a ({r['reason']})" if not r["reason"].startswith("not implemented") else "n/a (not implemented)"
    if r["status"] == "skipped":
        return r["reason"]
    return "error (see json)"


def _ratio_text(x) -> str:
    return "—" if x is None else f"{x:.2f}×"


def write_markdown(path: Path, result: dict) -> None:
    """Write ``bench.md``: the machine, a table per size (rows tricks, columns implementations, images/s) and ratios."""
    records, ratios, m = result["records"], result["ratios"], result["machine"]
    lines = [
        "# twintricks bench",
        "",
        f"Measured {m['date_utc']} UTC on **{m['cpu_model']}** ({m['cpu_cores']} cores"
        f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}), torch device `{m['torch_device']}`, "
        f"jax platform `{m['jax_platform']}`, torch threads {m.get('torch_threads')}"
        f"{' (--threads ' + str(m['threads_requested']) + ' for both frameworks)' if m.get('threads_requested') else ''}; "
        f"load average at start {m.get('loadavg_at_start')}, "
        f"at end {m.get('loadavg_at_end')}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + f", Python {m['python']}.",
        "",
        f"Mode: `{result['mode']}` (first call excluded; {result['budget']['warmup']} more warm-up calls; "
        f"median of {result['budget']['min_repeats']}–{result['budget']['max_repeats']} repeats "
        f"in {result['budget'].get('rounds', 1)} round(s), the cases of a row and phase alternating round by round, "
        "[min–max] beside it; inputs rotated; synchronised). Cells are images/s (higher is better). "
        "Ratio columns: our best column in that framework divided by the fastest existing implementation "
        "doing the same job in the same framework (> 1: ours is faster); * = none exists in that framework, "
        "compared with the other framework's fastest. † = does a different, cheaper job (one draw for the "
        "whole batch), left out of the ratios.",
        "",
    ]
    sizes = [s for s in ("cifar", "imagenet") if any(r["size"] == s for r in records)]
    for size in sizes:
        rs = [r for r in records if r["size"] == size and r["trick"] in ROW_NAMES]
        if not rs:
            continue
        shape = rs[0]["shape"]
        lines += [f"## {size} size: batch {shape[0]}, {shape[1]}×{shape[2]}×{shape[3]} uint8", ""]
        cols = [c for c in IMPLS if any(r["impl"] == c for r in rs)]
        lines.append("| trick | " + " | ".join(cols) + " | torch_impl / best existing | jax_impl / best existing |")
        lines.append("|---" * (len(cols) + 3) + "|")
        for trick in ROW_NAMES:
            row = {r["impl"]: r for r in rs if r["trick"] == trick}
            if not row:
                continue
            ratio = next((x for x in ratios if x["size"] == size and x["trick"] == trick), {})
            cells = [_cell(row.get(c)) for c in cols]
            rt, rj = (
                _ratio_text(ratio.get(f"{fw}_ratio")) + ("*" if ratio.get(f"{fw}_cross") else "")
                for fw in ("torch_impl", "jax_impl")
            )
            lines.append(f"| {_title(trick)} | " + " | ".join(cells) + f" | {rt} | {rj} |")
        lines += ["", "First call (compile / warm-up), seconds:", ""]
        lines.append("| trick | " + " | ".join(cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for trick in ROW_NAMES:
            row = {r["impl"]: r for r in rs if r["trick"] == trick}
            if not row:
                continue
            cells = [
                f"{row[c]['first_call_s']:.2f}" if c in row and row[c]["status"] == "ok" else "" for c in cols
            ]
            lines.append(f"| {_title(trick)} | " + " | ".join(cells) + " |")
        lines.append("")
    for recipe in TRAIN_ROWS:
        tr = [r for r in records if r["trick"] == recipe]
        if not tr:
            continue
        title = "the default model (default recipe)" if recipe == TRAIN else "the default model with tricks"
        lines += [f"## Training step of {title}", ""]
        lines.append("| implementation | batch, input | images/s [min–max] | first call (s) | peak memory (MiB) | note |")
        lines.append("|---|---|---|---|---|---|")
        for r in tr:
            if r["status"] == "ok":
                mem = r.get("peak_memory_bytes")
                mem_s = f"{mem / 2**20:.0f}" if mem is not None else "—"
                lines.append(
                    f"| {r['impl']} | {r['shape'][0]}, {'×'.join(map(str, r['shape'][1:]))} | {_cell(r)} | "
                    f"{r['first_call_s']:.2f} | {mem_s} | {r.get('note', '')} |"
                )
            else:
                lines.append(f"| {r['impl']} | | {_cell(r)} | | | |")
        ok = {r["impl"]: r["images_per_s"] for r in tr if r["status"] == "ok"}
        tb = max((v for k, v in ok.items() if k.startswith("torch")), default=None)
        jb = ok.get("jax_impl jit")
        if tb and jb:
            lines += ["", f"jax_impl / best torch_impl: {jb / tb:.2f}×"]
        lines.append("")
    goals = goal_rows(result)
    if goals:
        lines += [
            "## Goals",
            "",
            "AutoAugment, RandAugment, TrivialAugmentWide and AugMix: ours (per-image draws, batched) at "
            "least 10× (CPU) / 50× (GPU) faster than torchvision applying the policy image by image. Every other trick: ours at least 1/1.5 "
            "of the fastest existing implementation of the same job (ratio ≥ 0.67). AdaBound is "
            "compared with Adam, its cost floor. RICAP has no existing implementation.",
            "",
            "| size | trick | ours (best column) | compared with | ours / it | target | met |",
            "|---|---|---|---|---|---|---|",
        ]
        for g in goals:
            met = "—" if g["met"] is None else ("yes" if g["met"] else "**no**")
            lines.append(
                f"| {g['size']} | {_title(g['trick'])} | {g['ours'] or g['framework']} | {g['vs'] or '—'} | "
                f"{_ratio_text(g['ratio'])} | ≥ {g['target']:.2f}× | {met} |"
            )
        lines.append("")
    present = [t for t in (*ROW_NAMES, *TRAIN_ROWS) if any(r["trick"] == t for r in records)]
    if present:
        lines += ["## What each row does", ""]
        lines += [f"- **{_title(t)}**" + (f" (`--only {t}`)" if t in ROWS else "") + f": {ROW_DOCS[t]}"
                  for t in present if t in ROW_DOCS]
        lines.append("")
    groups: dict[tuple[str, str], list[str]] = {}
    for r in records:
        if r.get("note"):
            tricks = groups.setdefault((r["impl"], r["note"]), [])
            if r["trick"] not in tricks:
                tricks.append(r["trick"])
    if groups:
        lines += ["## What each column runs", ""]
        for (impl, note), tricks in sorted(groups.items(), key=lambda kv: (IMPLS.index(kv[0][0]), kv[1][0])):
            lines.append(f"- {impl} ({', '.join(map(_title, tricks))}): {note}")
        lines.append("")
    errors = [r for r in records if r["status"] == "error"]
    if errors:
        lines += ["## Errors", ""]
        lines += [f"- {r['size']} {_title(r['trick'])} / {r['impl']}: {r['reason']}" for r in errors]
        lines.append("")
    mems = {r.get("memory_kind") for r in records if r.get("memory_kind")}
    if mems:
        lines += ["Peak memory (in bench.json for every case) is measured as: " + "; ".join(sorted(mems)) + ".", ""]
    atomic_write_bytes(path, "\n".join(lines).encode())


def write_plot(path: Path, result: dict) -> None:
    """Write ``bench.png``: images/s per trick and implementation, one panel per size, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in result["records"] if r["status"] == "ok"]
    sizes = [s for s in ("cifar", "imagenet") if any(r["size"] == s for r in records)] or ["(none)"]
    rows_all = [*ROW_NAMES, *TRAIN_ROWS]
    fig, axes = plt.subplots(1, len(sizes), figsize=(8 * len(sizes), 7), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, size in zip(axes[0], sizes):
        rs = [r for r in records if r["size"] == size]
        rows = [t for t in rows_all if any(r["trick"] == t for r in rs)]
        impls = [c for c in IMPLS if any(r["impl"] == c for r in rs)]
        h = 0.8 / max(1, len(impls))
        for j, impl in enumerate(impls):
            ys, xs = [], []
            for k, trick in enumerate(rows):
                r = next((r for r in rs if r["trick"] == trick and r["impl"] == impl), None)
                if r is not None:
                    ys.append(k + (j - (len(impls) - 1) / 2) * h)
                    xs.append(r["images_per_s"])
            ax.barh(ys, xs, height=h, color=colors(IMPLS.index(impl) % 10), label=impl, hatch="" if impl in OURS else "//")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([_title(t) for t in rows])
        ax.invert_yaxis()
        if rs:
            ax.set_xscale("log")
        ax.set_xlabel("images/s (log scale, higher is better)")
        ax.set_title(f"{size} size")
        ax.grid(axis="x", which="both", alpha=0.3)
        if impls:
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4)
    m = result["machine"]
    fig.suptitle(f"twintricks bench — {m['cpu_model']} ({m['cpu_cores']} cores){', ' + m['gpu'] if m.get('gpu') else ''}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)


def _skip_record(case: Case, ctx: Context, reason: str) -> dict:
    return {**_record(case, ctx), "status": "skipped", "reason": reason}


def _write(out: Path, result: dict, *, plot: bool = True) -> None:
    """Write bench.json and bench.md, and bench.png unless ``plot`` is False (the partial saves
    during a run: drawing the figure took about 0.5 s of CPU each time, most of a tiny run's saves)."""
    result["ratios"] = _ratios(result["records"])
    result["goals"] = goal_rows(result)
    atomic_write_bytes(out / "bench.json", json.dumps(result, indent=1, default=str).encode())
    write_markdown(out / "bench.md", result)
    if plot:
        write_plot(out / "bench.png", result)


def settle_allocator() -> None:
    """Free one 30 MiB block before timing anything.

    glibc's ``malloc`` raises its mmap threshold to the largest block freed (up to 32 MiB), so
    afterwards it serves blocks of a few MiB from its heap and keeps them, as in any process that
    has already run a model. Without this, whether a case's full-batch temporaries were returned to
    the system and faulted back in on every call depended on which cases had run before it (on the
    development machine, several times a mixing call's time, for ours and the references alike)."""
    np.empty(30 << 20, dtype=np.uint8)


def run(args) -> int:
    """Run the benchmark described by ``args`` (see :func:`add_parser`); returns the exit code."""
    tiny = bool(getattr(args, "tiny", False) or os.environ.get("TWINTRICKS_BENCH_TINY"))
    device = args.device or _default_device()
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("twintricks bench: --device cuda but torch sees no GPU")
    jax_platform = "gpu" if device == "cuda" else "cpu"
    mode = "tiny" if tiny else ("quick" if args.quick else "full")
    budget = BUDGETS[mode]
    compile_torch = args.compile if args.compile is not None else (mode == "full")
    limit = args.time_limit if args.time_limit is not None else TIME_LIMITS[mode]
    rows = _select(args.only)
    if mode != "full" and not args.only:
        rows = [r for r in rows if r != TRAIN_TRICKS]  # the second recipe only in full runs or by --only
    sizes = ["cifar", "imagenet"] if args.size == "both" else [args.size]
    table = TINY_SIZES if tiny else SIZES
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        threads_note = set_threads(args.threads)
    except ValueError:
        raise SystemExit("twintricks bench: --threads must be >= 1") from None
    try:
        import torch

        torch.manual_seed(args.seed)
    except ImportError:
        pass
    settle_allocator()
    machine = machine_info(device, jax_platform)
    machine["threads_requested"] = args.threads
    if threads_note:
        machine["threads_note"] = threads_note
    v = machine["versions"]

    def machine_tag() -> str:
        return (
            f"{machine['cpu_model']} x{machine['cpu_cores']}"
            + (f", {machine['gpu']}" if machine.get("gpu") else "")
            + f"; torch {v.get('torch')} on {device}, jax {v.get('jax')} on {jax_platform}"
        )
    started = time.perf_counter()
    result = {
        "mode": mode,
        "budget": budget.__dict__,
        "torch_compile": compile_torch,
        "time_limit_s": limit,
        "machine": machine,
        "records": [],
        "units": "images_per_s = batch / seconds per call (for AdaBound: batch / seconds per optimizer update)",
    }
    print(
        f"twintricks bench: mode {mode}, device {device}, sizes {', '.join(sizes)}, "
        f"torch.compile {'on' if compile_torch else 'off'}, time limit {limit or 'none'} s"
    )
    # Every torch case (torch_impl, torchvision, timm, torch) before any jax case: once jax's
    # runtime has started, torch's CPU timings in the same process were 5-20 % slower. Within each
    # framework: the tricks, then the training step; the torch.compile columns (slow to compile on a
    # CPU) last among torch's, so that a time limit drops them before the rest of torch's figures.
    plan: list[tuple[Case, Context]] = []
    for size in sizes:
        ctx = Context(
            table[size], torch_device=device, jax_platform=jax_platform, compile_torch=compile_torch, seed=args.seed, tiny=tiny
        )
        cases = cases_for(ctx, [r for r in rows if r in ROW_NAMES])
        if size == "cifar" and any(r in rows for r in TRAIN_ROWS):
            cases += training_cases(ctx, [r for r in TRAIN_ROWS if r in rows])
        plan += [(c, ctx) for c in cases]
    def phase(cc) -> tuple[bool, int]:
        case = cc[0]
        compiled = case.impl == "torch_impl compile"
        return case.framework == "jax", (case.trick in TRAIN_ROWS) + 2 * compiled

    plan.sort(key=phase)
    # one group per size, row and phase: its cases are timed in alternation
    groups: list[list[tuple[Case, Context]]] = []
    for cc in plan:
        last = groups[-1][0] if groups else None
        if last is not None and last[1] is cc[1] and (phase(last), last[0].trick) == (phase(cc), cc[0].trick):
            groups[-1].append(cc)
        else:
            groups.append([cc])
    jax_started = False

    def skip(case: Case) -> str | None:
        elapsed = time.perf_counter() - started
        reserve = 3.0
        if case.impl == "torch_impl compile" and compile_torch:
            reserve = 120.0 if case.trick in TRAIN_ROWS else 60.0
        # A compile column that will not compile (off, or AdaBound's) reports its reason at once.
        instant = case.impl == "torch_impl compile" and (not compile_torch or case.trick == "adabound")
        if limit and elapsed + reserve > limit and not instant:
            return f"skipped (time limit {limit:.0f} s)"
        return None

    for n, group in enumerate(groups):
        case, ctx = group[0]
        if case.framework == "jax" and not jax_started:
            add_jax_info(machine)
            jax_started = True
        elapsed = time.perf_counter() - started
        for (case, ctx), rec in zip(group, _run_group(group, budget, device, skip)):
            rec["machine"] = machine_tag()
            result["records"].append(rec)
            extra = f"  first call {rec['first_call_s']:.2f}s" if rec["status"] == "ok" else ""
            print(f"  [{elapsed:5.0f}s] {ctx.size.name:8s} {case.trick:20s} {case.impl:26s} {_cell(rec)}{extra}", flush=True)
        if n + 1 < len(groups) and (groups[n + 1][0][1] is not ctx or case.impl == "torch_impl compile"):
            result["wall_s"] = time.perf_counter() - started
            machine["loadavg_at_end"] = loadavg()
            _write(out, result, plot=False)  # partial results survive an interrupted run
    result["wall_s"] = time.perf_counter() - started
    machine["loadavg_at_end"] = loadavg()
    _write(out, result)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'} in {result['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover  (`twintricks bench` is the same parser)
    parser = argparse.ArgumentParser(prog="twintricks")
    add_parser(parser.add_subparsers(required=True))
    args = parser.parse_args(["bench", *sys.argv[1:]])
    sys.exit(args.func(args))
