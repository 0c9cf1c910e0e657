"""`twintricks bench` on a tiny configuration: the files are written and well-formed.

No timing assertions (the figures depend on the machine); what is checked is the structure:
every requested (size, trick, implementation) has a record, figures are positive and ordered
(min <= median <= max), a missing or failing implementation is reported, not fatal, and the
markdown and PNG are what they claim to be.
"""

from __future__ import annotations

import json
import math

import pytest

from twintricks_bench.cases import IMPLS
from twintricks_bench.rows import POLICY_ROWS, ROW_NAMES, ROW_TITLES
from twintricks_cli import main

# A few cheap rows (every row's cases are built by test_every_row_has_a_case); --tiny shrinks the
# batches, images and optimizer parameters.
# One row of each kind (a loss, a mixing trick, a policy, an optimizer, the training step) is
# enough for the structure checked here.
ROWS = ["label_smoothing", "mixup", "randaugment", "adabound", "training step"]


def _bench(tmp_path, *extra):
    out = tmp_path / "bench"
    rc = main(["bench", "--tiny", "--quick", "--device", "cpu", "--out", str(out), *extra])
    assert rc == 0
    return out, json.loads((out / "bench.json").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    return _bench(tmp, "--only", *ROWS)


def test_files_written(run):
    out, _ = run
    for name in ("bench.json", "bench.md", "bench.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(out / "bench.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_json_structure(run):
    _, res = run
    assert res["mode"] == "tiny"
    m = res["machine"]
    for key in ("cpu_model", "cpu_cores", "versions", "date_utc", "torch_device", "jax_platform"):
        assert key in m
    assert m["versions"]["torch"] and m["versions"]["jax"]
    recs = res["records"]
    # Every requested row at both sizes (the training step only at CIFAR size).
    for size in ("cifar", "imagenet"):
        tricks = {r["trick"] for r in recs if r["size"] == size}
        want = {t for t in ROWS if t != "training step" or size == "cifar"}
        assert tricks == want, (size, tricks)
    seen = set()
    for r in recs:
        assert r["impl"] in IMPLS
        assert m["cpu_model"] in r["machine"]  # the machine travels with every figure
        assert r["status"] in ("ok", "n/a", "skipped", "error")
        key = (r["size"], r["trick"], r["impl"])
        assert key not in seen
        seen.add(key)
        if r["status"] == "ok":
            assert r["images_per_s"] > 0 and math.isfinite(r["images_per_s"])
            assert r["images_per_s_min"] <= r["images_per_s"] <= r["images_per_s_max"]
            assert r["seconds_min"] <= r["seconds_median"] <= r["seconds_max"]
            assert r["repeats"] >= 1 and r["first_call_s"] >= 0
            assert r["images_per_s"] == pytest.approx(r["batch"] / r["seconds_median"])
        else:
            assert r["reason"]
    # torch.compile columns are off under --quick and reported as skipped, not missing.
    assert all(r["status"] == "skipped" for r in recs if r["impl"] == "torch_impl compile")
    # Existing libraries that are always installed here ran.
    ok = {(r["trick"], r["impl"]) for r in recs if r["status"] == "ok"}
    assert ("label_smoothing", "torch") in ok and ("label_smoothing", "optax") in ok
    # Ratios are ours / best existing, consistent with the records.
    for x in res["ratios"]:
        if x["torch_impl_ratio"] is None:
            continue
        ours = next(r for r in recs if (r["size"], r["trick"], r["impl"]) == (x["size"], x["trick"], x["torch_impl_best"]))
        best = next(r for r in recs if (r["size"], r["trick"], r["impl"]) == (x["size"], x["trick"], x["torch_impl_vs"]))
        assert x["torch_impl_ratio"] == pytest.approx(ours["images_per_s"] / best["images_per_s"])
        assert best["same_job"] and not best["ours"]
        # Within the framework when an existing implementation exists there.
        assert best["framework"] == "torch" or x["torch_impl_cross"]
    # The goals restate the ratios with their targets.
    for g in res["goals"]:
        assert g["framework"] in ("torch_impl", "jax_impl")
        policy = g["trick"] in POLICY_ROWS
        assert g["target"] == pytest.approx(10.0 if policy else 1 / 1.5)
        assert g["met"] is None if g["ratio"] is None else g["met"] == (g["ratio"] >= g["target"])


def test_markdown_tables(run):
    _, res = run
    md = (run[0] / "bench.md").read_text()
    assert res["machine"]["cpu_model"] in md
    for size in ("cifar", "imagenet"):
        assert f"## {size} size" in md
    table_rows = [line for line in md.splitlines() if line.startswith("| ")]
    header = next(line for line in table_rows if line.startswith("| trick |") and "best existing" in line)
    ncols = header.count("|")
    for trick in ROWS:
        if trick != "training step":
            rows = [line for line in table_rows if line.startswith(f"| {ROW_TITLES[trick]} |")]
            assert rows and all(line.count("|") >= ncols - 2 for line in rows[:1])
    assert "## Training step of the default model" in md


def test_missing_and_failing_implementations_are_reported(tmp_path, monkeypatch):
    import torch_impl

    # A trick whose module has not landed: n/a (not implemented), the run goes on.
    monkeypatch.delattr(torch_impl, "label_smoothing_cross_entropy", raising=False)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    import jax_impl

    monkeypatch.setattr(jax_impl, "label_smoothing_cross_entropy", broken)
    out, res = _bench(tmp_path, "--only", "label", "--size", "cifar")
    by_impl = {r["impl"]: r for r in res["records"]}
    assert by_impl["torch_impl eager"]["status"] == "n/a"
    assert by_impl["torch_impl eager"]["reason"].startswith("not implemented")
    assert by_impl["jax_impl jit"]["status"] == "error" and "boom" in by_impl["jax_impl jit"]["reason"]
    assert by_impl["torch"]["status"] == "ok"
    md = (out / "bench.md").read_text()
    assert "n/a (not implemented)" in md and "## Errors" in md


def test_only_rejects_unknown_rows(tmp_path):
    with pytest.raises(SystemExit, match="matches none"):
        main(["bench", "--tiny", "--only", "nosuchtrick", "--out", str(tmp_path)])


def test_every_row_has_a_case():
    from twintricks_bench.cases import TINY_SIZES, Context
    from twintricks_bench.rows import cases_for

    cases = cases_for(Context(TINY_SIZES["cifar"]), ROW_NAMES)
    assert {c.trick for c in cases} == set(ROW_NAMES)
    # Each row times ours in all three columns.
    for t in ROW_NAMES:
        assert {c.impl for c in cases if c.trick == t} >= {"torch_impl eager", "torch_impl compile", "jax_impl jit"}


def test_a_row_is_one_entry_with_its_doc():
    """Each trick row is one `Row` entry: its name is in ROW_NAMES (in order) with its doc and
    title, and every row of bench.md (tricks and training steps) has a description."""
    from twintricks_bench.harness import ROW_DOCS as ALL_DOCS
    from twintricks_bench.harness import TRAIN_ROWS
    from twintricks_bench.rows import ROW_DOCS, ROWS, collect_rows

    assert ROW_NAMES == tuple(ROWS) and set(ROW_DOCS) == set(ROW_NAMES) == set(ROW_TITLES)
    assert all(ALL_DOCS[name].strip() for name in (*ROW_NAMES, *TRAIN_ROWS))
    with pytest.raises(ValueError, match="defined twice"):
        collect_rows([ROWS["cutout"], ROWS["cutout"]])


def test_only_takes_names_trick_ids_and_the_former_titles():
    from twintricks_bench.harness import _select

    assert _select(["cutmix"]) == ["cutmix", "mixup_cutmix"]  # the recipe trick's rows
    assert _select(["AutoAugment", "random erasing", "resized"]) == ["random_erasing", "crop_flip", "autoaugment"]
    assert _select(["training step"]) == ["training step"]


def test_time_limit_skips_the_rest_and_still_writes(tmp_path):
    # A limit already spent when the run starts: every case is reported as skipped, files written.
    out, res = _bench(tmp_path, "--only", "label", "--size", "cifar", "--time-limit", "1e-9")
    assert res["records"] and all(r["status"] == "skipped" for r in res["records"])
    # Columns that were never going to run (torch.compile off under --quick) say so instead.
    for r in res["records"]:
        want = "torch.compile off" if r["impl"] == "torch_impl compile" else "time limit"
        assert want in r["reason"], r
    assert (out / "bench.md").exists() and (out / "bench.png").exists()


def test_need_finds_functions_and_reports_missing_ones():
    from twintricks_bench.cases import NotAvailable, need

    assert callable(need("torch_impl", "autoaugment"))
    with pytest.raises(NotAvailable, match="not implemented"):
        need("torch_impl", "no_such_trick")
    with pytest.raises(NotAvailable, match="not installed"):
        need("no_such_library_xyz", "f")


def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no GPU"):
        main(["bench", "--tiny", "--device", "cuda", "--out", str(tmp_path)])


def test_a_rows_cases_alternate_round_by_round():
    """Each case of a group is built and warmed up, then the rounds alternate between the cases,
    so a slow spell of the machine falls on every implementation compared; a case that fails in a
    later round is reported as an error, the others still get their figures."""
    from twintricks_bench.cases import TINY_SIZES, Case, Context
    from twintricks_bench.harness import _run_group
    from twintricks_bench.timing import Budget

    log = []

    def build(name, fail_after=None):
        def make():
            log.append((name, "build"))

            def call(i):
                log.append((name, i))
                if fail_after is not None and i > fail_after:
                    raise RuntimeError("late failure")
                return i

            return call

        return make

    ctx = Context(TINY_SIZES["cifar"], compile_torch=False, tiny=True)
    budget = Budget(warmup=1, min_repeats=3, max_repeats=3, seconds=0.0, group_seconds=0.0, rounds=3)
    group = [(Case("t", "timm", "torch", build("a")), ctx), (Case("t", "torchvision v2 batch", "torch", build("b", fail_after=4)), ctx)]
    skipped = (Case("t", "torch_impl eager", "torch", build("c")), ctx)
    recs = _run_group([*group, skipped], budget, "cpu", lambda case: "skipped (test)" if case.impl == "torch_impl eager" else None)
    a, b, c = recs
    assert a["status"] == "ok" and a["rounds"] == 3 and len(a["round_medians_s"]) == 3 and a["repeats"] == 3
    assert b["status"] == "error" and "late failure" in b["reason"]
    assert c["status"] == "skipped" and ("c", "build") not in log
    # build + first call + warm-up + sizing call per case, then one timed call per case per round
    order = [name for name, i in log if i != "build"]
    assert order == ["a"] * 3 + ["b"] * 3 + ["a", "b"] * 3  # b fails in round 3 (call 5)
