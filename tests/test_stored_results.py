"""Stored results: written with their provenance, read back exactly, and every committed file complete."""
from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from marlpg.book import stored_results
from marlpg.book.stored_results import last_at, load, parse, provenance, write

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["method", "seed", "iteration", "frames", "cpu_seconds", "eval_return"]


def _rows():
    rows = []
    for method in ("A", "B"):
        for seed in (1, 0):
            for iteration in (1, 2, 3):
                rows.append({"method": method, "seed": seed, "iteration": iteration, "frames": 100 * iteration,
                             "cpu_seconds": 1.5 * iteration, "eval_return": None if iteration == 2 else -iteration / 4})
    return rows


def test_written_results_read_back_with_their_provenance(tmp_path):
    about = {"command": "python bench.py --seeds 0,1", "commit": "abc1234", "machine": "x86_64", "date": "today"}
    path = write(tmp_path / "results" / "x.csv", _rows(), FIELDS, about)
    stored = parse("x.csv", path.read_text())
    assert stored.provenance == about
    assert stored.rows == _rows()  # numbers come back as numbers, blanks as None
    assert stored.caption() == "command: python bench.py --seeds 0,1; commit: abc1234; machine: x86_64; date: today"
    a = stored.evaluations("A")
    assert [[row["seed"] for row in seed_rows] for seed_rows in a] == [[0, 0], [1, 1]]  # seed order, evaluations only
    assert [row["iteration"] for row in a[0]] == [1, 3]
    with pytest.raises(ValueError, match="no method 'C'.*'A', 'B'"):
        stored.evaluations("C")


def test_provenance_names_command_commit_machine_and_date():
    about = provenance(frames=10)
    assert {"command", "commit", "machine", "date", "load_at_start"} <= about.keys() and about["frames"] == "10"
    with pytest.raises(ValueError, match="one line"):
        write("/nonexistent/never.csv", [], FIELDS, {"command": "two\nlines"})


def test_last_at_reads_a_curve_at_a_budget():
    curve = [{"cpu_seconds": 1.0, "v": 1}, {"cpu_seconds": 2.0, "v": 2}, {"cpu_seconds": 3.0, "v": 3}]
    assert last_at(curve, "cpu_seconds", 2.5)["v"] == 2
    assert last_at(curve, "cpu_seconds", 3.0)["v"] == 3
    assert last_at(curve, "cpu_seconds", 0.5) is None


def test_load_finds_the_checkout_and_names_what_is_there(tmp_path):
    folder = tmp_path / "benchmarks" / "results"
    write(folder / "a.csv", _rows(), FIELDS, {"command": "c"})
    (tmp_path / "notebooks").mkdir()
    assert load("a.csv", start=tmp_path / "notebooks").rows == _rows()
    with pytest.raises(FileNotFoundError, match=r"no stored results 'b.csv'.*\['a.csv'\]"):
        load("b.csv", start=tmp_path / "notebooks")
    with pytest.raises(ValueError, match="no rows"):
        parse("empty.csv", "# command: c\nmethod,seed\n")


def test_without_a_checkout_the_error_says_to_clone(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="could not be read.*network unreachable.*clone of the course"):
        load("a.csv", start=tmp_path)


@pytest.mark.parametrize("path", sorted((ROOT / stored_results.RESULTS_FOLDER).glob("*.csv")), ids=lambda p: p.name)
def test_every_committed_result_says_how_it_was_made(path):
    stored = parse(path.name, path.read_text())
    assert {"command", "commit", "machine", "date"} <= stored.provenance.keys(), f"{path.name}: header comments missing"
    assert "local changes" not in stored.provenance["commit"], f"{path.name} was made from uncommitted code"
    if stored.provenance.get("kind") == "timings":  # a speed table (e.g. bench_fleet --speed): sizes and times
        assert stored.rows and "ms" in " ".join(stored.rows[0]), f"{path.name}: a timing table without times"
    else:  # training runs: one row per iteration or per run
        assert {"method", "seed", "frames"} <= stored.rows[0].keys()


def test_compare_reads_every_method_at_the_reference_methods_budget(tmp_path):
    # "slow": 3 seeds, evaluations every 100 frames and 10 CPU s, to 300 frames / 30 CPU s.
    # "fast": 3 seeds, evaluations every 50 frames and 2 CPU s, to 600 frames / 24 CPU s.
    rows = []
    for seed in range(3):
        for k in (1, 2, 3):
            rows.append({"method": "slow", "seed": seed, "frames": 100 * k, "cpu_seconds": 10.0 * k + seed,
                         "eval_return": -1.0, "gap": 0.1 * k + 0.01 * seed})
        for k in range(1, 13):
            rows.append({"method": "fast", "seed": seed, "frames": 50 * k, "cpu_seconds": 2.0 * k,
                         "eval_return": -1.0, "gap": 0.05 * k})
    fields = ["method", "seed", "frames", "cpu_seconds", "eval_return", "gap"]
    write(tmp_path / "benchmarks" / "results" / "slow.csv", [r for r in rows if r["method"] == "slow"], fields,
          {"command": "c"})
    write(tmp_path / "benchmarks" / "results" / "fast.csv", [r for r in rows if r["method"] == "fast"], fields,
          {"command": "d"})
    comparison = stored_results.compare({"S": ("slow.csv", "slow"), "F": ("fast.csv", "fast")}, budget_of="S",
                                        start=tmp_path)
    assert comparison.budgets == {"frames": 300.0, "cpu_seconds": 31.0}  # median of 30, 31, 32
    # At 300 frames "fast" has its 6th evaluation (gap 0.30) in every seed; "slow" its last (0.30, 0.31, 0.32).
    assert comparison.at_budget["frames"]["F"].point == pytest.approx(0.30)
    assert comparison.at_budget["frames"]["S"].point == pytest.approx(0.31)
    # At 31 CPU s "fast" has its 12th evaluation (24 s, gap 0.60); "slow" seed 2 (32 s) only its 2nd (0.22).
    assert comparison.at_budget["cpu_seconds"]["F"].point == pytest.approx(0.60)
    assert sorted(len(c) for c in comparison.within("cpu_seconds")["S"]) == [2, 3, 3]
    assert [len(c) for c in comparison.within("frames")["F"]] == [6, 6, 6]
    assert comparison.captions == ["slow.csv: command: c", "fast.csv: command: d"]
    with pytest.raises(ValueError, match="budget_of must be one of"):
        stored_results.compare({"S": ("slow.csv", "slow")}, budget_of="X", start=tmp_path)
    late = [{"method": "late", "seed": 0, "frames": 1_000, "cpu_seconds": 5.0, "eval_return": -1.0, "gap": 0.5}]
    write(tmp_path / "benchmarks" / "results" / "late.csv", late, fields, {"command": "e"})
    with pytest.raises(ValueError, match="'L' has a run with no evaluation within frames = 300"):
        stored_results.compare({"S": ("slow.csv", "slow"), "L": ("late.csv", "late")}, budget_of="S", start=tmp_path)


def test_curve_recorder_keeps_rows_with_cpu_seconds_and_gap():
    record = stored_results.CurveRecorder("M", 3, (-10.0, 10.0))
    record({"iteration": 1, "frames": 100, "return": -1.234567})
    kept = record({"iteration": 2, "frames": 200, "return": 0.5, "eval_return": 5.0})
    assert kept["gap"] == 0.75 and kept["method"] == "M" and kept["seed"] == 3 and kept["cpu_seconds"] >= 0
    assert record.rows[0]["gap"] is None and record.rows[0]["return"] == -1.2346
    assert record.finish(9.0)["eval_return"] == 5.0  # the last row already had its evaluation
    record({"iteration": 3, "frames": 300, "return": 1.0})
    assert record.finish(0.0)["gap"] == 0.5
    assert list(record.rows[-1]) == ["method", "seed", "iteration", "frames", "return", "cpu_seconds", "gap",
                                     "eval_return"]


def test_curve_recorder_without_a_reference_leaves_the_gap_empty():
    record = stored_results.CurveRecorder("rMAPPO", 0, None)
    assert record({"iteration": 1, "frames": 10, "return": 0.5, "eval_return": 1.25})["gap"] is None
    record({"iteration": 2, "frames": 20, "return": 0.7})
    last = record.finish(1.5)
    assert last["eval_return"] == 1.5 and last["gap"] is None


def test_curve_recorder_notes_the_first_row_at_the_target_on_unrounded_values():
    at_target = lambda values: values.get("win") is not None and values["win"] >= 0.8  # noqa: E731
    record = stored_results.CurveRecorder("rMAPPO", 1, None, reached=at_target, extra={"map": "3m"})
    record({"iteration": 1, "frames": 10, "win": 0.79996})  # rounds to 0.8, but has not reached it
    assert record.first is None and record.rows[0]["win"] == 0.8 and record.rows[0]["map"] == "3m"
    second = record({"iteration": 2, "frames": 20, "win": 0.85})
    record({"iteration": 3, "frames": 30, "win": 0.9})
    assert record.first is second
    late = stored_results.CurveRecorder("rMAPPO", 1, None, reached=at_target)
    late({"iteration": 1, "frames": 10})
    assert late.finish(0.0, win=0.9)["win"] == 0.9 and late.first is None  # the final evaluation does not count
    assert late.finish(0.0, final_counts=True, win=0.9) is late.first  # unless asked


def test_local_path_finds_any_stored_file_and_caches_downloads(tmp_path, monkeypatch):
    folder = tmp_path / "course" / "benchmarks" / "results"
    folder.mkdir(parents=True)
    (folder / "team.pt").write_bytes(b"\x00weights")
    assert stored_results.local_path("team.pt", start=folder.parent.parent).read_bytes() == b"\x00weights"
    with pytest.raises(FileNotFoundError, match=r"no stored file 'other.pt'.*\['team.pt'\]"):
        stored_results.local_path("other.pt", start=folder.parent.parent)

    downloads = []

    class Response:
        def read(self):
            return b"downloaded"

    def fake_urlopen(url, timeout):
        downloads.append(url)
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setattr(Path, "home", lambda: tmp_path / "home")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for _ in range(2):
        path = stored_results.local_path("team.pt", start=outside)
        assert path.read_bytes() == b"downloaded" and path.parent == tmp_path / "home" / ".cache" / "marlpg"
    assert downloads == [f"{stored_results.COURSE_RAW}/benchmarks/results/team.pt"]  # fetched once, then cached


def test_stored_smax_runs_back_the_claim_of_chapter_08():
    """Recurrent MAPPO on smax:3m won at least 80% of its evaluation battles within 15 minutes of wall time on
    every stored seed (the claim chapter 08 and the README make; benchmarks/bench_smax_learning.py made the file)."""
    stored = load("smax_3m.csv", start=ROOT)
    runs = stored.runs(method="rMAPPO")
    assert len(runs) >= 3, f"three seeds are claimed; the file has {sorted(runs)}"
    for (method, seed), rows in runs.items():
        reached = [row for row in rows if row.get("eval_win_rate") is not None and row["eval_win_rate"] >= 0.8]
        assert reached and reached[0]["seconds"] <= 15 * 60, f"seed {seed} did not win 80% within 15 minutes"
    assert "2 cores" in stored.provenance["machine"]


def test_stored_smax_runs_at_the_default_budget_show_what_memory_buys_on_3m():
    """At the default budget every recurrent method's worst seed wins more 3m battles than the feed-forward
    MAPPO's best seed (chapter 08's memory verdict at 2M frames rests on these files)."""
    rows = load("smax_3m.csv", start=ROOT).rows + load("smax_3m_full.csv", start=ROOT).rows
    finals = {}
    for row in rows:
        if row.get("eval_win_rate") is not None:
            finals.setdefault(row["method"], {})[row["seed"]] = row["eval_win_rate"]  # the last evaluation wins
    assert {"rMAPPO", "MAPPO", "rIPPO", "rMAPPO-AS"} <= finals.keys(), sorted(finals)
    assert all(len(seeds) >= 3 for seeds in finals.values()), {m: sorted(s) for m, s in finals.items()}
    feed_forward_best = max(finals["MAPPO"].values())
    for method in ("rMAPPO", "rIPPO", "rMAPPO-AS"):
        assert min(finals[method].values()) > feed_forward_best + 0.3, (method, finals[method], finals["MAPPO"])
