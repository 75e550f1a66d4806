"""The algorithms' command lines: fast and complete help, errors in the words of the flags, no progress bar
written to a file, and the defaults the help states are the configs' own."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import marlpg.coma
import marlpg.maddpg
import marlpg.mappo
from marlpg.algos import coma, maddpg, mappo
from marlpg.commands import in_flag_names, parser_for

REPO = Path(__file__).resolve().parents[1]
COMMANDS = [marlpg.mappo, marlpg.coma, marlpg.maddpg]


def python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("name", ["mappo", "coma", "maddpg"])
def test_help_and_a_bad_flag_import_neither_torch_nor_a_simulator(name):
    code = (f"import sys\nfrom marlpg.{name} import main\n"
            "for argv in (['--help'], ['--no-such-flag']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "heavy = sorted(m for m in ('torch', 'vmas', 'pettingzoo', 'ray') if m in sys.modules)\n"
            "print('heavy=' + ','.join(heavy))")
    run = python(code)
    assert run.returncode == 0, run.stderr
    assert "usage: python -m marlpg." + name in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "heavy=", run.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.NAME)
def test_every_flag_has_help(command):
    for action in parser_for(command)._actions:
        assert action.help, f"{command.NAME}: {action.option_strings} has no help"


def stated_default(command, flag: str) -> str:
    action = next(a for a in parser_for(command)._actions if flag in a.option_strings)
    found = re.search(r"\(default ([^);]+)[);]", action.help)
    assert found, (flag, action.help)
    return found.group(1).replace(",", "")


@pytest.mark.parametrize("flag, field", [("--total-frames", "total_frames"), ("--num-envs", "num_envs"), ("--lr", "lr"),
                                         ("--chunk-length", "chunk_length"), ("--eval-episodes", "eval_episodes")])
def test_mappo_help_states_the_configs_defaults(flag, field):
    assert float(stated_default(marlpg.mappo, flag)) == getattr(mappo.MAPPOConfig(), field)


def test_a_flag_left_out_leaves_the_configs_value():
    args = parser_for(marlpg.mappo).parse_args([])
    assert marlpg.mappo.config_from_args(args) == mappo.MAPPOConfig()
    args = parser_for(marlpg.coma).parse_args([])
    assert marlpg.coma.config_from_args(args) == coma.COMAConfig()


def test_the_commands_choices_are_the_algorithms():
    assert marlpg.coma.BASELINES == coma.BASELINES
    assert marlpg.maddpg.ENVS == maddpg.ENVS
    assert marlpg.maddpg.CRITICS == maddpg.CRITICS


@pytest.mark.parametrize("argv, flag, field", [
    (["--n-agents", "0"], "--n-agents", "n_agents"),
    (["--horizon", "0"], "--horizon", "horizon"),
    (["--num-envs", "0"], "--num-envs", "num_envs"),
    (["--lr", "-1"], "--lr", "lr"),
])
def test_config_errors_name_the_flag(argv, flag, field, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        marlpg.mappo.main(argv + ["--total-frames", "100", "--out", str(tmp_path)])
    message = str(exit_info.value)
    assert message.startswith("error: ") and flag in message, message
    assert not re.search(rf"(?<!-){field}\b", message.replace(flag, "")), message


def test_flag_names_replace_whole_fields_only():
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-envs")
    parser.add_argument("--n-agents")
    parser.add_argument("--horizon")
    text = "minibatches=9 exceeds the 8 samples (num_envs=1 x rollout_steps=8); n_agents_total stays"
    assert in_flag_names(text, parser) == "minibatches=9 exceeds the 8 samples (--num-envs=1 x rollout_steps=8); n_agents_total stays"
    assert in_flag_names("horizon must be positive; the horizon is 0", parser) == "--horizon must be positive; the horizon is 0"


def test_no_progress_bar_when_standard_error_is_a_file(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), MARLPG_RUNS=str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "marlpg.coma", "--env", "credit", "--total-frames", "64"],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "frame" not in run.stderr and "%|" not in run.stderr and "it/s" not in run.stderr, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("eval_return=")
