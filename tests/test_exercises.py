"""The exercises (30.7.1-30.7.3): instructor notebooks, generated student versions, and the grading contract.

What is checked:

* the committed student versions in ``notebooks/exercises/`` equal a fresh ``autograder/generate.py`` run;
* ``nbgrader validate`` passes on every instructor notebook and fails on every blank student version;
* no exercise notebook mentions ``marlpg`` (the graded kernel cannot import it);
* the grader's contract (autograder/DESIGN.md): a first locked cell defines ``report``; every autograded cell
  has a hidden block, and a hidden block holds nothing but ``report(...)`` calls and assignments to
  temporaries; no value the instructor notebook reports is written anywhere in any exercise notebook;
* points and cell metadata are what the notebooks announce;
* the instructor notebooks run top to bottom on a fresh kernel in under 90 s each;
* the reference functions of Exercise 30.7.2 reproduce Output 30.7.1, agree with an independent loop
  implementation of the stated protocol and with the course library, and show the measured trends.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from conftest import gauss_hermite_expectation

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ("ex30_7_1", "ex30_7_2", "ex30_7_3")
SOURCE = {a: REPO / "solutions" / a / f"{a}.ipynb" for a in ASSIGNMENTS}
RELEASE = {a: REPO / "notebooks" / "exercises" / a / f"{a}.ipynb" for a in ASSIGNMENTS}
ALL_NOTEBOOKS = [*SOURCE.values(), *RELEASE.values()]
NBGRADER = Path(sys.executable).with_name("nbgrader")
# (automatic points, manual points) each notebook's introduction announces. Exercise 30.7.1 has no automatic
# points: both its predicted directions are measured on the course's own pages, so only the arguments count.
POINTS = {"ex30_7_1": (0, 8), "ex30_7_2": (10, 7), "ex30_7_3": (6, 6)}
TIME_LIMIT_S = 90
HIDDEN = re.compile(r"^### BEGIN HIDDEN TESTS\n(.*?)^### END HIDDEN TESTS", re.M | re.S)
GRADE_LINE = re.compile(r"^@@grade (.*)$", re.M)

sys.path.insert(0, str(REPO / "autograder"))
import generate  # noqa: E402  (autograder/generate.py, imported as a module)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_autograded_test(cell) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution")


def read(path: Path):
    return nbformat.read(path, as_version=4)


def clean_env() -> dict:
    """The environment of a graded kernel as far as this machine allows: no course library on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["MPLBACKEND"] = "Agg"
    return env


# ----------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    generate.generate(ASSIGNMENTS, out)
    return out


def comparable(notebook) -> list:
    """Cell types, sources and nbgrader metadata (less the checksum), plus the edit locks nbgrader sets."""
    cells = []
    for cell in notebook.cells:
        meta = dict(nbgrader_meta(cell))
        meta.pop("checksum", None)
        locks = {k: cell.metadata.get(k) for k in ("editable", "deletable")}
        tags = sorted(cell.metadata.get("tags", []))  # the book's display tags (hide-input) travel too
        cells.append((cell.cell_type, cell.source, meta, locks, tags, bool(cell.get("outputs"))))
    return cells


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_student_version_equals_fresh_generation(assignment, fresh_release):
    fresh = read(fresh_release / assignment / f"{assignment}.ipynb")
    committed = read(RELEASE[assignment])
    assert comparable(committed) == comparable(fresh), (
        f"notebooks/exercises/{assignment} is stale: run `python autograder/generate.py` and commit the result"
    )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_hides_solutions_and_hidden_tests(assignment):
    text = RELEASE[assignment].read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "report(\\\"", "Rubric", "Model answer"):
        assert marker not in text, f"{assignment} student version contains {marker!r}"
    notebook = read(RELEASE[assignment])
    stubs = [c for c in notebook.cells if nbgrader_meta(c).get("solution")]
    assert stubs and all(("YOUR CODE HERE" in c.source) or ("YOUR ANSWER HERE" in c.source) for c in stubs)


# ----------------------------------------------------------------------------- nbgrader validate


def validate(path: Path, tmp_path: Path) -> str:
    result = subprocess.run(
        [str(NBGRADER), "validate", str(path)], capture_output=True, text=True, cwd=tmp_path, env=clean_env(), timeout=300
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_passes_on_the_solution(assignment, tmp_path):
    output = validate(SOURCE[assignment], tmp_path)
    assert "Success! Your notebook passes all the tests." in output, output[-3000:]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_nbgrader_validate_fails_on_the_blank_student_version(assignment, tmp_path):
    output = validate(RELEASE[assignment], tmp_path)
    assert "VALIDATION FAILED" in output, output[-3000:]
    assert "Success!" not in output


# ----------------------------------------------------------------------------- the grader's contract


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_is_self_contained_and_clean(path):
    text = path.read_text()
    assert "marlpg" not in text.lower(), f"{path.name} mentions the course library, which the graded kernel cannot import"
    notebook = read(path)
    nbformat.validate(notebook)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in notebook.cells if c.cell_type == "code")
    imports = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                imports.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imports.add((node.module or "").split(".")[0])
    assert imports <= {"json", "time", "numpy", "matplotlib"}, imports


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_first_cell_is_the_locked_report_function(assignment, capsys):
    first = read(SOURCE[assignment]).cells[0]
    meta = nbgrader_meta(first)
    assert first.cell_type == "code" and meta.get("locked") and not meta.get("solution") and not meta.get("grade")
    namespace = {}
    exec(first.source, namespace)
    namespace["report"]("check", {"a": np.float64(1.5), "b": np.arange(3), "c": np.int64(2), "d": "grows"})
    namespace["report"]("other", np.array([[0.25]]))
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        '@@grade {"id": "check", "value": {"a": 1.5, "b": [0, 1, 2], "c": 2, "d": "grows"}}',
        '@@grade {"id": "other", "value": [[0.25]]}',
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_report_function_is_folded_away_in_the_book(assignment):
    # The grader's helper is not the first thing a student reads: the book shows it folded ("hide-input"), in
    # the handed-out notebook as in the instructor's; its source, and so its nbgrader checksum and the
    # autograder's comparison with earlier releases, is unchanged by the tag.
    for notebook in (read(SOURCE[assignment]), read(RELEASE[assignment])):
        first = notebook.cells[0]
        assert "def report(" in first.source
        assert first.metadata.get("tags") == ["hide-input"], first.metadata
    for later in read(SOURCE[assignment]).cells[1:]:
        assert "hide-input" not in later.metadata.get("tags", []), nbgrader_meta(later).get("grade_id")


def hidden_blocks(notebook) -> list[tuple[dict, str]]:
    return [(nbgrader_meta(c), block) for c in notebook.cells if c.cell_type == "code" for block in HIDDEN.findall(c.source)]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_autograded_cell_reports_from_a_hidden_block(assignment):
    notebook = read(SOURCE[assignment])
    tests = [c for c in notebook.cells if is_autograded_test(c)]
    assert bool(tests) == (POINTS[assignment][0] > 0)
    for cell in tests:
        meta = nbgrader_meta(cell)
        assert cell.cell_type == "code" and meta.get("locked") and meta.get("points", 0) > 0, meta
        blocks = HIDDEN.findall(cell.source)
        assert len(blocks) == 1, f"{meta['grade_id']}: expected one hidden block"
        calls = [
            node
            for node in ast.walk(ast.parse(blocks[0]))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "report"
        ]
        assert calls, f"{meta['grade_id']}: the hidden block reports nothing"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_hidden_blocks_hold_only_reports_and_temporaries(assignment):
    notebook = read(SOURCE[assignment])
    blocks = hidden_blocks(notebook)
    assert bool(blocks) == (POINTS[assignment][0] > 0)
    for meta, block in blocks:
        gid = meta.get("grade_id")
        assert is_autograded_test({"metadata": {"nbgrader": meta}}), f"hidden block outside a test cell: {gid}"
        for statement in ast.parse(block).body:
            if isinstance(statement, ast.Assign):
                names = [t for t in statement.targets if isinstance(t, ast.Name)]
                assert len(names) == len(statement.targets) and all(n.id.startswith("_") for n in names), (
                    f"{gid}: a hidden block may assign only to temporaries (_name): {ast.unparse(statement)}"
                )
            else:
                assert (
                    isinstance(statement, ast.Expr)
                    and isinstance(statement.value, ast.Call)
                    and isinstance(statement.value.func, ast.Name)
                    and statement.value.func.id == "report"
                ), f"{gid}: only report(...) calls and assignments allowed, got {ast.unparse(statement)}"
                check_id = statement.value.args[0]
                assert isinstance(check_id, ast.Constant) and check_id.value.startswith(assignment + "-")
            for node in ast.walk(statement):
                assert not isinstance(node, (ast.Compare, ast.Assert, ast.If, ast.Lambda)), (
                    f"{gid}: no comparisons or decisions in a hidden block: {ast.unparse(statement)}"
                )


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_cells_and_points_are_as_announced(assignment):
    notebook = read(SOURCE[assignment])
    ids = [nbgrader_meta(c).get("grade_id") for c in notebook.cells]
    assert all(ids), "every cell carries nbgrader metadata with a grade_id (the grader matches cells by it)"
    assert len(set(ids)) == len(ids), "grade_ids are unique"
    assert all(gid.startswith(assignment + "-") for gid in ids)
    assert all(nbgrader_meta(c).get("schema_version") == 3 for c in notebook.cells)
    automatic = sum(nbgrader_meta(c)["points"] for c in notebook.cells if is_autograded_test(c))
    manual_cells = [c for c in notebook.cells if nbgrader_meta(c).get("grade") and nbgrader_meta(c).get("solution")]
    manual = sum(nbgrader_meta(c)["points"] for c in manual_cells)
    assert (automatic, manual) == POINTS[assignment]
    intro = notebook.cells[1].source
    assert f"Automatic points: {automatic}." in intro and f"Manual points: {manual}." in intro
    assert f"Total: {automatic + manual}." in intro
    for cell in manual_cells:  # rubric and model answer live inside the solution region
        region = re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S)
        assert region, nbgrader_meta(cell)["grade_id"]
        if cell.cell_type == "markdown":
            assert "Rubric" in region.group(1), nbgrader_meta(cell)["grade_id"]


PREDICTIONS_30_7_1 = {"a": "GAP_AS_N_GROWS", "b": "GAP_AS_COUPLING_GROWS"}


def test_neither_prediction_of_30_7_1_is_autograded():
    """Both directions of 30.7.1 can be looked up on the course's pages (and for (b) the source and the course's
    measurement disagree): neither value may earn or lose a point. Each is checked for its form and printed, in a
    locked cell without points, so Exercise 30.7.2's reconciliation can refer to it."""
    notebook = read(SOURCE["ex30_7_1"])
    for cell in notebook.cells:
        if is_autograded_test(cell):
            assert not any(name in cell.source for name in PREDICTIONS_30_7_1.values()), nbgrader_meta(cell)["grade_id"]
    cells = {nbgrader_meta(c)["grade_id"]: c for c in notebook.cells}
    for part, name in PREDICTIONS_30_7_1.items():
        check = cells[f"ex30_7_1-{part}-format"]
        meta = nbgrader_meta(check)
        assert meta["locked"] and not meta["grade"] and not meta.get("points") and not HIDDEN.findall(check.source)
        assert f"print(\"recorded prediction for ({part}):\", {name})" in check.source
    assert nbgrader_meta(cells["ex30_7_1-a-argument"])["points"] == 3  # the point moved to the argument
    assert "Rubric (3 points)" in cells["ex30_7_1-a-argument"].source


def test_the_book_shows_the_exercises_as_handed_out_and_executes_only_the_solutions():
    # The handed-out notebooks are shown as written (answers still to write: executing them would stop at the
    # first NotImplementedError). The solutions are executed, with their outputs, in the instructor edition
    # only: the student edition leaves solutions/ out of the book it builds.
    import yaml

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import student_edition
    finally:
        sys.path.remove(str(REPO / "scripts"))
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    excluded = config["execute"]["exclude_patterns"]
    assert "notebooks/exercises/*/*.ipynb" in excluded
    assert not any(pattern.startswith("solutions") for pattern in excluded), excluded
    assert "solutions/" in student_edition.LEFT_OUT and student_edition.is_instructor_entry("solutions/ex30_7_2/ex30_7_2")
    top_level = sorted((REPO / "notebooks").glob("*.ipynb"))  # what tests/test_notebooks.py executes
    assert not any("exercises" in p.parts for p in top_level)


# ----------------------------------------------------------------------------- running the instructor notebooks


@pytest.fixture(scope="module")
def executed_notebooks(tmp_path_factory):
    """Each instructor notebook run once on a fresh kernel: (seconds, the executed notebook)."""
    runs = {}
    for assignment in ASSIGNMENTS:
        notebook = read(SOURCE[assignment])
        workdir = tmp_path_factory.mktemp(assignment)
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(clean_env())
        try:
            client = NotebookClient(
                notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
            )
            start = time.perf_counter()
            client.execute()
            seconds = time.perf_counter() - start
        finally:
            os.environ.clear()
            os.environ.update(saved)
        runs[assignment] = (seconds, notebook)
    return runs


@pytest.fixture(scope="module")
def executed(executed_notebooks):
    """Each instructor notebook's run: (seconds, [(grade_id, report dict)])."""
    results = {}
    for assignment, (seconds, notebook) in executed_notebooks.items():
        reports = []
        for cell in notebook.cells:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "stream" and output.get("name") == "stdout":
                    for line in GRADE_LINE.findall(output["text"]):
                        reports.append((nbgrader_meta(cell).get("grade_id"), json.loads(line)))
        results[assignment] = (seconds, reports)
    return results


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_runs_quickly_and_reports_from_every_test_cell(assignment, executed):
    seconds, reports = executed[assignment]
    assert seconds < TIME_LIMIT_S, f"{assignment} took {seconds:.0f} s"
    tests = {nbgrader_meta(c)["grade_id"] for c in read(SOURCE[assignment]).cells if is_autograded_test(c)}
    assert {gid for gid, _ in reports} == tests, "reports come from test cells only, and from each of them"
    ids = [report["id"] for _, report in reports]
    assert len(ids) == len(set(ids)), "report ids are unique"
    for _, report in reports:
        assert set(report) == {"id", "value"}


def numbers(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)


def test_no_reported_value_is_written_in_any_notebook(executed):
    """The kernel never sees a reference answer: no reported number appears in any exercise notebook."""
    texts = {path: path.read_text() for path in ALL_NOTEBOOKS}
    checked = 0
    for assignment, (_, reports) in executed.items():
        for _, report in reports:
            for value in numbers(report["value"]):
                if not np.isfinite(value) or value == round(value) or abs(value) < 1e-3:
                    continue
                forms = {f"{value:.6g}", f"{value:.5g}", repr(value)}
                forms = {f for f in forms if len(re.sub(r"[^0-9]", "", f).lstrip("0")) >= 5}
                for path, text in texts.items():
                    for form in forms:
                        assert form not in text, f"{path.name} contains the reported value {form} ({report['id']})"
                checked += 1
    assert checked > 50


def stdout_of(notebook, grade_id) -> str:
    cell = next(c for c in notebook.cells if nbgrader_meta(c).get("grade_id") == grade_id)
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_string_answers_are_reported_exactly(executed, executed_notebooks):
    _, one = executed_notebooks["ex30_7_1"]
    assert stdout_of(one, "ex30_7_1-a-format") == "recorded prediction for (a): grows\n"  # recorded, not reported
    assert stdout_of(one, "ex30_7_1-b-format") == "recorded prediction for (b): shrinks\n"
    assert executed["ex30_7_1"][1] == []  # nothing of 30.7.1 is compared with a reference
    reports = {r["id"]: r["value"] for _, r in executed["ex30_7_3"][1]}
    expected = {"a": ("MADDPG", "off-policy replay"), "b": ("COMA", "counterfactual baseline"), "c": ("MAPPO", "PPO clipping")}
    for letter, (algorithm, feature) in expected.items():
        assert reports[f"ex30_7_3-{letter}-algorithm"] == algorithm
        assert reports[f"ex30_7_3-{letter}-feature"] == feature


# ----------------------------------------------------------------------------- Exercise 30.7.2's reference functions


@pytest.fixture(scope="module")
def ex2():
    """The reference functions of Exercise 30.7.2, defined by running its solution cells."""
    namespace = {}
    wanted = ("-imports", "-team-reward", "-course-step", "-advantages", "-run", "-sweep")
    for cell in read(SOURCE["ex30_7_2"]).cells:
        if cell.cell_type == "code" and nbgrader_meta(cell).get("grade_id", "").endswith(wanted):
            exec(cell.source, namespace)
    return namespace


def test_reference_reproduces_output_30_7_1(ex2):
    run = ex2["gradient_variance_run"]
    assert ex2["course_step"](4, 1.0, 32) == pytest.approx(0.02, abs=1e-15)
    assert round(run("state-value", 4, 1.0, step=0.02), 4) == 18.8079
    assert round(run("independent", 4, 1.0, step=0.02), 4) == 29.3406
    assert round(run("state-value", 4, 1.0), 4) == 18.8079  # the course's step is the source's at this cell


def loop_run(critic, n, c, *, target, sigma, step, batch, steps, seeds, baseline_rate, seed_offset):
    """The protocol written again from the notebook's text, seed by seed and rollout by rollout."""
    k = 1 + c * (n - 1)

    def reward(a):
        return -(np.sum((a - target) ** 2) + c * np.sum((a[:, None] - a[None, :]) ** 2) / 2)

    per_seed = []
    for s in range(seeds):
        rng = np.random.default_rng(seed_offset + s)
        mu = rng.standard_normal(n) * 0.5
        baseline = np.zeros(n)
        total = 0.0
        for _ in range(steps):
            actions = mu + sigma * rng.standard_normal((batch, n))
            rewards = np.array([reward(a) for a in actions])
            if critic == "independent":
                adv = rewards[:, None] - baseline[None, :]
                baseline += baseline_rate * (rewards.mean() - baseline)
            elif critic == "state-value":
                adv = np.tile((rewards - rewards.mean())[:, None], (1, n))
            else:  # Q_i(x, a_i) - V(x), expanded around the means: dR/dmu_i d_i - k d_i^2 + k sigma^2
                grad = -2 * ((mu - target) + c * (n * mu - mu.sum()))
                d = actions - mu
                adv = grad * d - k * d**2 + k * sigma**2
            g = adv * (actions - mu) / sigma**2
            total += g.var(axis=0).mean()
            mu = mu + step * g.mean(axis=0)
        per_seed.append(total / steps)
    return float(np.mean(per_seed))


@pytest.mark.parametrize("critic", ["independent", "state-value", "own-action"])
def test_any_implementation_of_the_protocol_gives_the_same_numbers(ex2, critic):
    protocol = dict(target=-0.3, sigma=0.3, batch=8, steps=40, seeds=3, baseline_rate=0.05, seed_offset=555)
    step = ex2["course_step"](5, 1.5, 8)
    reference = ex2["gradient_variance_run"](critic, 5, 1.5, **protocol)
    assert reference == pytest.approx(loop_run(critic, 5, 1.5, step=step, **protocol), rel=1e-9)


def test_reference_matches_the_course_library(ex2):
    sys.path.insert(0, str(REPO / "src"))
    from marlpg.rendezvous import simulate

    couplings = (0.25, 1.0, 4.0)
    for n in (2, 8):
        sim = simulate(n, couplings, ("independent", "state-value"), seeds=4, steps=60)
        for critic in ("independent", "state-value"):
            ours = [ex2["gradient_variance_run"](critic, n, c, seeds=4, steps=60) for c in couplings]
            np.testing.assert_allclose(ours, sim.mean_variance(critic), rtol=1e-9)


def test_own_action_advantage_is_q_minus_v(ex2):
    """Q_i(x, a_i) - V(x) by exact Gauss-Hermite quadrature over the others' (and everyone's) actions."""
    rng = np.random.default_rng(11)
    n, target, coupling, sigma = 3, 0.4, 1.3, 0.3
    mu = rng.normal(0, 0.5, n)
    actions = mu + sigma * rng.standard_normal((4, n))
    adv = ex2["advantages"]("own-action", ex2["team_reward"](actions, target, coupling), actions, mu, sigma, target, coupling, np.zeros(n))

    def reward(a):
        return float(ex2["team_reward"](a[None, :], target, coupling)[0])

    value = gauss_hermite_expectation(reward, mu, sigma)
    for b in range(len(actions)):
        for i in range(n):
            point = mu.copy()
            point[i] = actions[b, i]
            others = [j for j in range(n) if j != i]
            q = gauss_hermite_expectation(reward, point, sigma, dims=others)
            assert adv[b, i] == pytest.approx(q - value, rel=1e-10, abs=1e-12)


def test_own_action_gradient_is_unbiased(ex2):
    rng = np.random.default_rng(5)
    n, target, coupling, sigma, batches, batch = 4, 0.7, 1.0, 0.25, 4000, 32
    mu = rng.normal(0, 0.5, n)
    eps = rng.standard_normal((batches, batch, n))
    actions = mu + sigma * eps
    rewards = ex2["team_reward"](actions, target, coupling)
    adv = ex2["advantages"]("own-action", rewards, actions, mu, sigma, target, coupling, np.zeros((batches, n)))
    estimates = (adv * eps / sigma).mean(axis=1)  # [batches, n]
    exact = -2 * ((mu - target) + coupling * (n * mu - mu.sum()))
    se = estimates.std(axis=0, ddof=1) / np.sqrt(batches)
    assert np.all(np.abs(estimates.mean(axis=0) - exact) < 5 * se)


def test_measured_grid_has_the_trends_the_course_reports(ex2):
    """With 30 seeds: independent > state-value > own-action in every cell; the source's ratio grows with n
    and shrinks with the coupling; the own-action critic's lead over the state-value critic grows with n."""
    agents, couplings = (2, 4, 8, 16), (0.25, 1.0, 4.0)
    grid = ex2["variance_sweep"](agents, couplings, ("independent", "state-value", "own-action"))
    independent, state_value, own_action = grid[..., 0], grid[..., 1], grid[..., 2]
    assert np.all(independent > state_value) and np.all(state_value > own_action)
    ratio = independent / state_value
    assert np.all(np.diff(ratio, axis=0) > 0) and np.all(np.diff(ratio, axis=1) < 0)
    assert np.all(np.diff(state_value / own_action, axis=0) > 0)


# ----------------------------------------------------------------------------- end to end: submissions against the reference

ALTERNATIVE_30_7_2 = {
    # A student's solution written independently of the reference: pairwise sums, loops over seeds,
    # the own-action advantage by its expansion around the means.
    "ex30_7_2-team-reward": '''
def team_reward(actions, target, coupling):
    actions = np.asarray(actions, dtype=float)
    gaps = actions[..., :, None] - actions[..., None, :]
    return -(((actions - target) ** 2).sum(axis=-1) + coupling * (gaps**2).sum(axis=(-1, -2)) / 2)
''',
    "ex30_7_2-course-step": '''
def course_step(n_agents, coupling, batch):
    return 0.4 / n_agents / (1 + n_agents * max(coupling, 0.25)) * min(batch / 32, 1)
''',
    "ex30_7_2-advantages": '''
CRITICS = ("independent", "state-value", "own-action")

def advantages(critic, rewards, actions, mu, sigma, target, coupling, running_baseline):
    batch, n = actions.shape
    if critic == "independent":
        return np.array([[r - running_baseline[i] for i in range(n)] for r in rewards])
    if critic == "state-value":
        return np.outer(rewards - np.mean(rewards), np.ones(n))
    if critic == "own-action":
        k = 1 + coupling * (n - 1)
        slope = -2 * ((mu - target) + coupling * (n * mu - np.sum(mu)))
        d = actions - mu
        return slope * d - k * d**2 + k * sigma**2
    raise ValueError(critic)
''',
    "ex30_7_2-run": '''
def gradient_variance_run(critic, n_agents, coupling, *, target=0.7, sigma=0.25, step=None, batch=32,
                          steps=400, seeds=30, baseline_rate=0.02, seed_offset=1000):
    if step is None:
        step = course_step(n_agents, coupling, batch)
    results = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed_offset + seed)
        mu = rng.standard_normal(n_agents) * 0.5
        baseline = np.zeros(n_agents)
        recorded = []
        for _ in range(steps):
            actions = mu + sigma * rng.standard_normal((batch, n_agents))
            rewards = team_reward(actions, target, coupling)
            a = advantages(critic, rewards, actions, mu, sigma, target, coupling, baseline)
            if critic == "independent":
                baseline = baseline + baseline_rate * (rewards.mean() - baseline)
            g = a * (actions - mu) / sigma**2
            recorded.append(g.var(axis=0).mean())
            mu = mu + step * g.mean(axis=0)
        results.append(np.mean(recorded))
    return float(np.mean(results))
''',
    "ex30_7_2-sweep": '''
def variance_sweep(agents, couplings, critics, **protocol):
    return np.array([[[gradient_variance_run(k, n, c, **protocol) for k in critics] for c in couplings] for n in agents])
''',
    "ex30_7_2-table": "ratios = None",
    "ex30_7_2-plot": "pass",
    "ex30_7_2-explain": "The own-action critic lands lowest.",
    "ex30_7_2-reconcile": "It grew with n.",
}

# A wrong third branch: V(x) estimated by the batch mean instead of its exact value.
WRONG_OWN_ACTION = ALTERNATIVE_30_7_2["ex30_7_2-advantages"].replace(
    "return slope * d - k * d**2 + k * sigma**2",
    "return team_reward(mu, target, coupling) + slope * d - k * d**2 - (n - 1) * k * sigma**2 - np.mean(rewards)",
)

ANSWERS = {
    # 30.7.1 has no automatic point to earn or lose: (a) against the course's own measurement, (b) with it
    "ex30_7_1-a-answer": 'GAP_AS_N_GROWS = "shrinks"',
    "ex30_7_1-b-answer": 'GAP_AS_COUPLING_GROWS = "grows"',
    "ex30_7_3-a-answer": 'ALGORITHM_A = "MADDPG"\nFEATURE_A = "off-policy replay"',
    "ex30_7_3-b-answer": 'ALGORITHM_B = "COMA"\nFEATURE_B = "PPO clipping"',  # one wrong feature
    "ex30_7_3-c-answer": 'ALGORITHM_C = "MAPPO"\nFEATURE_C = "PPO clipping"',
}


def submission(assignment, answers, tests_from=None):
    """The student version with its solution cells answered, and its test cells as the grader rebuilds them."""
    source = {nbgrader_meta(c)["grade_id"]: c for c in read(SOURCE[assignment]).cells}
    notebook = read(RELEASE[assignment])
    for cell in notebook.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in answers:
            cell.source = answers[gid].strip()
        elif is_autograded_test(cell) or nbgrader_meta(cell).get("locked"):
            cell.source = source[gid].source  # hidden tests back in, as the grader does
    return notebook


def run_reports(notebook, workdir) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(clean_env())
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(workdir)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    by_cell = {}
    for cell in notebook.cells:
        if is_autograded_test(cell):
            failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            reports = [
                json.loads(line)
                for o in cell.get("outputs", [])
                if o.get("output_type") == "stream"
                for line in GRADE_LINE.findall(o.get("text", ""))
            ]
            by_cell[nbgrader_meta(cell)["grade_id"]] = None if failed else reports
    return by_cell


def same_reports(student, reference) -> bool:
    """The grader's rule: same ids in order, numbers within rtol 1e-6 / atol 1e-9, everything else equal."""
    if student is None or [r["id"] for r in student] != [r["id"] for r in reference]:
        return False
    for mine, theirs in zip(student, reference):
        a, b = mine["value"], theirs["value"]
        if isinstance(b, str) or isinstance(a, str):
            if a != b:
                return False
            continue
        try:
            if not np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-6, atol=1e-9):
                return False
        except (ValueError, TypeError):
            return False
    return True


def earned(assignment, by_cell, executed) -> set:
    reference = {}
    for gid, report in executed[assignment][1]:
        reference.setdefault(gid, []).append(report)
    return {gid for gid, reports in by_cell.items() if same_reports(reports, reference[gid])}


def autograded_ids(assignment) -> set:
    return {nbgrader_meta(c)["grade_id"] for c in read(SOURCE[assignment]).cells if is_autograded_test(c)}


def test_an_independent_correct_solution_earns_every_automatic_point(executed, tmp_path):
    by_cell = run_reports(submission("ex30_7_2", ALTERNATIVE_30_7_2), tmp_path)
    assert earned("ex30_7_2", by_cell, executed) == autograded_ids("ex30_7_2")


def test_a_wrong_third_branch_loses_exactly_the_cells_that_use_it(executed, tmp_path):
    answers = dict(ALTERNATIVE_30_7_2, **{"ex30_7_2-advantages": WRONG_OWN_ACTION})
    by_cell = run_reports(submission("ex30_7_2", answers), tmp_path)
    lost = autograded_ids("ex30_7_2") - earned("ex30_7_2", by_cell, executed)
    assert lost == {"ex30_7_2-adv-own-action-test", "ex30_7_2-run-test", "ex30_7_2-sweep-test"}


def test_conceptual_answers_earn_what_they_should(executed, tmp_path):
    by_cell = run_reports(submission("ex30_7_1", ANSWERS), tmp_path / "one")
    assert earned("ex30_7_1", by_cell, executed) == autograded_ids("ex30_7_1")  # "shrinks" for (a) costs nothing
    by_cell = run_reports(submission("ex30_7_3", ANSWERS), tmp_path / "three")
    assert autograded_ids("ex30_7_3") - earned("ex30_7_3", by_cell, executed) == {"ex30_7_3-b-feature-test"}
