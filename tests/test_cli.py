"""python -m marlpg.rendezvous, run as a user runs it: in a subprocess with the venv's interpreter."""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import run_cli
from marlpg.rendezvous import CRITICS, SWEEP_AGENTS, SWEEP_COUPLINGS, stable_step

SEED_TABLE_LINES = [
    "cooperative rendezvous, n_agents = 4 , seeds = 30",
    "",
    "                          central critic   independent critic",
    "policy-gradient variance :        18.8079            29.3406",
    "final team reward mean   :        -0.0127            -0.0137",
    "final team reward std    :         0.0174             0.0196",
    "",
    "gradient-variance ratio (independent / central) : 1.56 x",
    "outcome-variance  ratio (independent / central) : 1.26 x",
]
NUMBER = r"-?\d+(?:\.\d+)?"


def table_part(stdout: str) -> list[str]:
    """The printed lines without the final timing line, which differs from run to run."""
    return [line for line in stdout.splitlines() if not re.match(r"^\((?:faithful loops|vectorized, \w+): [\d.]+ s\)$", line)]


def no_inf_or_nan(text: str) -> bool:
    return not re.search(r"\b(inf|nan)\b", text, re.IGNORECASE)


@pytest.fixture(scope="module")
def default_run():
    return run_cli()


def test_default_prints_output_30_7_1(default_run):
    assert default_run.returncode == 0, default_run.stderr
    lines = default_run.stdout.splitlines()
    assert lines[: len(SEED_TABLE_LINES)] == SEED_TABLE_LINES
    assert "Traceback" not in default_run.stderr


def test_default_also_reports_the_joint_action_critic(default_run):
    out = default_run.stdout
    joint = re.search(rf"policy-gradient variance \(joint-action\) : ({NUMBER})", out)
    ratio = re.search(rf"gradient-variance ratio \(independent / joint-action\) : ({NUMBER}) x", out)
    assert joint and ratio
    assert float(joint.group(1)) < 18.8079  # below the state-value critic's variance
    assert float(ratio.group(1)) == pytest.approx(29.3406 / float(joint.group(1)), abs=0.01)
    assert re.search(r"^\(vectorized, numpy: [\d.]+ s\)$", out, re.MULTILINE)


@pytest.fixture(scope="module")
def sweep_run():
    return run_cli("--sweep")


def parse_sweep_rows(stdout: str):
    rows = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 9 and re.fullmatch(r"\d+", fields[0]):
            n, coupling, step = int(fields[0]), float(fields[1]), float(fields[2])
            variances = [None if f == "diverged" else float(f) for f in fields[3:6]]
            ratios = [None if f == "diverged" else float(f.rstrip("x")) for f in fields[6:9]]
            rows[(n, coupling)] = (step, variances, ratios)
    return rows


def test_sweep_prints_twelve_rows_with_ratios(sweep_run):
    assert sweep_run.returncode == 0, sweep_run.stderr
    lines = sweep_run.stdout.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["n", "coupling", "step"])
    for name in CRITICS:
        assert name in header
    rows = parse_sweep_rows(sweep_run.stdout)
    assert len(rows) == 12
    assert set(rows) == {(n, c) for n in SWEEP_AGENTS for c in SWEEP_COUPLINGS}
    for (n, c), (step, variances, ratios) in rows.items():
        assert step == pytest.approx(stable_step(n, c), rel=5e-3)  # printed with 3 significant digits
        assert None not in variances and None not in ratios
        independent, state_value, joint = variances
        expected = [independent / state_value, independent / joint, state_value / joint]
        np.testing.assert_allclose(ratios, expected, atol=0.006)
        assert independent > state_value > joint
    assert "36 cells x 30 seeds x 400 steps" in sweep_run.stdout
    assert no_inf_or_nan(sweep_run.stdout)


def test_sweep_rows_equal_the_library(sweep_run, auto_grid):
    rows = parse_sweep_rows(sweep_run.stdout)
    for sim in auto_grid:
        for coupling in sim.couplings:
            printed = rows[(sim.n_agents, float(coupling))][1]
            expected = [sim.cell(k, coupling)[1].mean() for k in CRITICS]
            np.testing.assert_allclose(printed, expected, atol=5e-5, rtol=0)


def test_help_mentions_every_option():
    result = run_cli("--help")
    assert result.returncode == 0
    for option in ("--agents", "--coupling", "--sigma", "--step", "--batch", "--steps", "--seeds", "--backend",
                   "--device", "--sweep", "--faithful", "--target"):
        assert option in result.stdout, option
    assert "auto" in result.stdout and "cuda" in result.stdout and "torch" in result.stdout


BAD_INPUT = [
    (["--agents", "0"], ["n_agents", "0", ">= 1"]),
    (["--agents", "-3"], ["n_agents", "-3", ">= 1"]),
    (["--agents", "2.5"], ["--agents", "2.5"]),
    (["--agents", "2", "4"], ["--agents", "one"]),
    (["--coupling", "nan"], ["coupling", "nan", "finite"]),
    (["--coupling", "inf"], ["coupling", "inf", "finite"]),
    (["--coupling", "-1"], ["coupling", "-1", ">= 0"]),
    (["--sigma", "0"], ["sigma", "0", "> 0"]),
    (["--sigma", "nan"], ["sigma", "nan"]),
    (["--step", "0"], ["step", "0", "> 0"]),
    (["--step", "-0.1"], ["step", "-0.1", "> 0"]),
    (["--step", "fast"], ["step", "fast", "auto"]),
    (["--steps", "0"], ["steps", "0", ">= 1"]),
    (["--batch", "0"], ["batch", "0", ">= 1"]),
    (["--seeds", "0"], ["seeds", "0", ">= 1"]),
    (["--backend", "jax"], ["backend", "jax", "numpy", "torch"]),
    (["--backend", "torch", "--device", "tpu"], ["device", "tpu", "cpu", "cuda"]),
    (["--backend", "torch", "--device", "cuda:99"], ["cuda:99", "CUDA"]),
    (["--device", "cuda"], ["numpy", "cuda", "torch"]),
    (["--sweep", "--agents", "2", "0"], ["n_agents", "0", ">= 1"]),
    (["--sweep", "--coupling", "1", "-4"], ["coupling", "-4", ">= 0"]),
    (["--sweep", "--backend", "jax"], ["backend", "jax"]),
    (["--sweep", "--faithful"], ["--faithful"]),
    (["--faithful", "--backend", "torch"], ["--faithful", "--backend"]),
        # the faithful loops and the sweep must check their input as well as the default path does
    (["--faithful", "--steps", "0"], ["steps", "0", ">= 1"]),
    (["--faithful", "--batch", "0", "--steps", "2", "--seeds", "1"], ["batch", "0", ">= 1"]),
    (["--faithful", "--seeds", "0"], ["seeds", "0", ">= 1"]),
    (["--faithful", "--sigma", "0", "--steps", "2", "--seeds", "1"], ["sigma", "0", "> 0"]),
    (["--faithful", "--step", "0", "--steps", "2", "--seeds", "1"], ["step", "0", "> 0"]),
    (["--sweep", "--seeds", "0"], ["seeds", "0", ">= 1"]),
    (["--sweep", "--steps", "0"], ["steps", "0", ">= 1"]),
    (["--sweep", "--batch", "0"], ["batch", "0", ">= 1"]),
    (["--sweep", "--batch", "-1"], ["batch", "-1", ">= 1"]),
]


@pytest.mark.parametrize("args, needles", [pytest.param(a, n, id=" ".join(a)) for a, n in BAD_INPUT])
def test_bad_input_is_a_clear_error_without_traceback(args, needles):
    result = run_cli(*args)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error_lines, result.stderr
    message = "\n".join(error_lines)
    for needle in needles:
        assert needle in message, (needle, message)
    assert "diverged" not in message  # bad input is not reported as a divergence
    assert result.stdout.strip() == ""  # no table printed from bad input


def test_sweep_with_the_seed_step_marks_divergence():
    result = run_cli("--sweep", "--step", "0.02")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "diverged" in result.stdout
    assert no_inf_or_nan(result.stdout) and no_inf_or_nan(result.stderr)
    rows = parse_sweep_rows(result.stdout)
    assert len(rows) == 12
    diverging = {(4, 4.0), (8, 1.0), (8, 4.0), (16, 0.25), (16, 1.0), (16, 4.0)}
    for key, (step, variances, _) in rows.items():
        assert step == 0.02
        assert (variances[0] is None) == (key in diverging), key  # the independent critic's column
    assert "error:" in result.stderr and "auto" in result.stderr


def test_single_run_that_diverges_is_an_error_naming_the_cell():
    result = run_cli("--agents", "8", "--step", "0.02", "--steps", "200", "--seeds", "4")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(r"error: .*diverged", result.stderr, re.DOTALL)
    assert "n=8 coupling=1 critic=independent" in result.stderr and "step 0.02" in result.stderr
    assert no_inf_or_nan(result.stdout + result.stderr)


def test_faithful_small_run_matches_the_vectorized_engine():
    faithful = run_cli("--faithful", "--steps", "20", "--seeds", "2")
    vectorized = run_cli("--steps", "20", "--seeds", "2")
    assert faithful.returncode == 0, faithful.stderr
    assert vectorized.returncode == 0, vectorized.stderr
    assert re.search(r"^\(faithful loops: [\d.]+ s\)$", faithful.stdout, re.MULTILINE)
    assert faithful.stdout.splitlines()[0] == "cooperative rendezvous, n_agents = 4 , seeds = 2"
    assert table_part(faithful.stdout) == table_part(vectorized.stdout)
    assert no_inf_or_nan(faithful.stdout)


def test_torch_backend_prints_the_same_table(default_run):
    result = run_cli("--backend", "torch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[: len(SEED_TABLE_LINES)] == SEED_TABLE_LINES
    assert table_part(result.stdout) == table_part(default_run.stdout)
    assert re.search(r"^\(vectorized, torch: [\d.]+ s\)$", result.stdout, re.MULTILINE)


def test_other_task_options_reach_the_engine():
    a = run_cli("--agents", "3", "--coupling", "0.5", "--sigma", "0.3", "--target", "-0.2", "--steps", "30", "--seeds", "3")
    b = run_cli("--agents", "3", "--coupling", "0.5", "--steps", "30", "--seeds", "3")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert a.stdout.splitlines()[0] == "cooperative rendezvous, n_agents = 3 , seeds = 3"
    assert table_part(a.stdout) != table_part(b.stdout)


def test_faithful_divergence_is_reported_not_printed():
    result = run_cli("--faithful", "--steps", "20", "--seeds", "2", "--agents", "16", "--coupling", "4", "--step", "0.5")
    assert result.returncode == 1
    assert "diverged" in result.stderr and "Traceback" not in result.stderr
    assert "policy-gradient variance" not in result.stdout
