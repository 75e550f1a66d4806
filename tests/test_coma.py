"""COMA: the one-pass counterfactual baseline against a loop, zero credit for an irrelevant agent,
TD(lambda) targets by hand, decentralized actors, determinism, the CLI, and learning on the credit game."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from marlpg.algos.coma import (
    COMA,
    COMAConfig,
    advantage_snapshot,
    counterfactual_advantage,
    counterfactual_inputs,
    episodes_to_optimum,
    fit_critic,
    train,
)
from marlpg.core.returns import n_step_return, td_lambda_targets
from marlpg.envs import make_env

from conftest import REPO, SRC


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- TD(lambda) targets by hand ------------------------------------------------------------------


def test_td_lambda_targets_by_hand():
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.0, 1.5])  # v_0, v_1, v_2 (from the target critic)
    dones = torch.tensor([0.0, 1.0, 0.0])  # the episode ends after step 1
    last_value = torch.tensor(2.0)  # v_3
    gamma, lam = 0.9, 0.5
    g2 = 2.0 + 0.9 * 2.0  # bootstraps from v_3 (both the one-step and the lambda part)
    g1 = 0.0  # the episode ends: no bootstrap at all
    g0 = 1.0 + 0.9 * (0.5 * 1.0 + 0.5 * g1)  # (1 - lambda) v_1 + lambda G_1
    targets = td_lambda_targets(rewards, values, dones, last_value, gamma, lam)
    assert targets.tolist() == pytest.approx([g0, g1, g2])


def test_td_lambda_limits_are_one_step_and_monte_carlo():
    rewards = torch.tensor([1.0, -1.0, 0.5, 2.0])
    values = torch.tensor([0.3, 0.7, -0.2, 1.1])
    dones = torch.zeros(4)
    last_value = torch.tensor(0.4)
    gamma = 0.8
    one_step = torch.tensor([1.0 + 0.8 * 0.7, -1.0 + 0.8 * -0.2, 0.5 + 0.8 * 1.1, 2.0 + 0.8 * 0.4])
    assert torch.allclose(td_lambda_targets(rewards, values, dones, last_value, gamma, 0.0), one_step)
    monte_carlo = torch.tensor([sum(0.8**k * r for k, r in enumerate([1.0, -1.0, 0.5, 2.0][t:])) + 0.8 ** (4 - t) * 0.4 for t in range(4)])
    assert torch.allclose(td_lambda_targets(rewards, values, dones, last_value, gamma, 1.0), monte_carlo)


def test_td_lambda_equals_the_forward_view_mixture_of_n_step_returns():
    generator = torch.Generator().manual_seed(0)
    T = 6
    rewards, values = torch.randn(T, 3, generator=generator), torch.randn(T, 3, generator=generator)
    dones = torch.tensor([0, 0, 1, 0, 0, 0], dtype=torch.bool).unsqueeze(-1).expand(T, 3)
    last_value = torch.randn(3, generator=generator)
    gamma, lam = 0.95, 0.7
    targets = td_lambda_targets(rewards, values, dones, last_value, gamma, lam)
    for t in range(T):
        horizon = T - t  # n-step returns beyond the rollout are all the same truncated one
        forward = sum((1 - lam) * lam ** (n - 1) * n_step_return(rewards, values, dones, last_value, gamma, t, n) for n in range(1, horizon))
        forward = forward + lam ** (horizon - 1) * n_step_return(rewards, values, dones, last_value, gamma, t, horizon)
        assert torch.allclose(targets[t], forward, atol=1e-5)


def test_td_lambda_rejects_bad_arguments():
    with pytest.raises(ValueError, match="lambda"):
        td_lambda_targets(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor(0.0), 0.9, 1.5)
    with pytest.raises(ValueError, match="must match"):
        td_lambda_targets(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.tensor(0.0), 0.9, 0.5)


# --- the critic's one forward pass ------------------------------------------------------------


def test_counterfactual_inputs_hide_only_the_agents_own_action():
    state = torch.randn(5, 2)
    actions = torch.randint(0, 3, (5, 4))
    inputs = counterfactual_inputs(state, actions, 3)
    assert inputs.shape == (5, 4, 2 + 4 * 3 + 4)
    for a in range(4):
        changed = actions.clone()
        changed[:, a] = (changed[:, a] + 1) % 3
        after = counterfactual_inputs(state, changed, 3)
        assert torch.equal(after[:, a], inputs[:, a]), "row a must not see agent a's own action"
        others = [b for b in range(4) if b != a]
        assert not torch.equal(after[:, others], inputs[:, others]), "every other row sees agent a's action"
    assert torch.equal(inputs[..., -4:], torch.eye(4).expand(5, 4, 4))


class HandMadeCritic(nn.Module):
    """A critic that reads COMA's input row and answers exactly f(x, (u_-a, u')) for every u'.

    It decodes the state, the others' actions and the agent's ID from the input, so the test checks
    the wiring (what the critic is given) as well as the sum over actions.
    """

    def __init__(self, payoff, state_dim: int, n_agents: int, n_actions: int):
        super().__init__()
        self.payoff, self.ds, self.n, self.u = payoff, state_dim, n_agents, n_actions

    def forward(self, inputs):
        lead = inputs.shape[:-1]
        rows = inputs.reshape(-1, inputs.shape[-1])
        state = rows[:, : self.ds]
        others = rows[:, self.ds : self.ds + self.n * self.u].reshape(-1, self.n, self.u)
        agent = rows[:, -self.n :].argmax(-1)
        joint = others.argmax(-1)  # the agent's own (zeroed) block decodes to 0, then is overwritten
        out = []
        for alternative in range(self.u):
            joint[torch.arange(len(rows)), agent] = alternative
            out.append(self.payoff(state, joint))
        return torch.stack(out, -1).reshape(*lead, self.u)


def nonlinear_payoff(state, joint):
    # Depends on the state and couples the agents: no agent's effect is additive.
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])[: joint.shape[-1]]
    return state[:, 0] * (joint.float() * weights).sum(-1) + (joint[:, 0] == joint[:, 1]).float() * state[:, 1] ** 2


def test_one_pass_baseline_equals_a_loop_over_actions():
    n, u, ds = 3, 3, 2
    spec = make_env("credit", 1, n_agents=n).spec
    spec = type(spec)(n_agents=n, obs_dim=1, state_dim=ds, discrete=True, n_actions=u, horizon=1)
    model = COMA(spec, COMAConfig(env="credit", n_agents=n, value_norm=False))
    with torch.no_grad():  # a policy that is far from uniform and differs per agent
        model.actors[0].net[-1].bias.copy_(torch.tensor([1.0, -0.5, 0.2]))
        model.actors[0].net[-1].weight.mul_(100)
    model.critic = HandMadeCritic(nonlinear_payoff, ds, n, u)
    generator = torch.Generator().manual_seed(0)
    state = torch.randn(7, ds, generator=generator)
    obs = torch.ones(7, n, 1)
    actions = torch.randint(0, u, (7, n), generator=generator)
    advantages = model.advantages(state, obs, actions)
    probs = model.policy(obs).probs
    assert not torch.allclose(probs[0, 0], probs[0, 1]), "the test needs agents with different policies"
    for e in range(7):
        q_taken = nonlinear_payoff(state[e : e + 1], actions[e : e + 1])
        for a in range(n):
            baseline = 0.0
            for alternative in range(u):
                swapped = actions[e : e + 1].clone()
                swapped[0, a] = alternative
                baseline += probs[e, a, alternative] * nonlinear_payoff(state[e : e + 1], swapped)
            assert advantages[e, a].item() == pytest.approx((q_taken - baseline).item(), abs=1e-5)


def test_counterfactual_advantage_by_hand():
    q_all = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]])  # agent 0 matters, agent 1 does not
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]]])
    actions = torch.tensor([[2, 1]])
    # agent 0: 5 - (0.5 + 0.75 + 1.25) = 2.5; agent 1: 2 - 2 = 0
    assert counterfactual_advantage(q_all, probs, actions)[0].tolist() == pytest.approx([2.5, 0.0])


# --- zero credit for an agent that does not matter ------------------------------------------


def test_exact_critic_gives_an_irrelevant_agent_exactly_zero_and_the_true_credit():
    env = make_env("credit", 64, n_agents=4, k_relevant=2)
    model = COMA(env.spec, COMAConfig(env="credit", n_agents=4, value_norm=False))
    model.critic = HandMadeCritic(lambda state, joint: env.payoff(joint), 2, 4, 3)
    snapshot = advantage_snapshot(model, env)
    assert snapshot["advantages"][:, 2:].abs().max().item() < 1e-6  # zero up to float rounding of sum(pi) = 1
    assert torch.allclose(snapshot["advantages"], snapshot["true_credit"], atol=1e-6)


def test_learned_critic_gives_an_irrelevant_agent_zero_credit_in_expectation():
    """Fit each critic at the initial policies, then look at 4,096 fresh episodes."""
    stats = {}
    for baseline in ("counterfactual", "state_value"):
        cfg = COMAConfig(env="credit", baseline=baseline, n_agents=4, k_relevant=2, num_envs=64, seed=0)
        model, _ = fit_critic(cfg, iterations=150)
        snapshot = advantage_snapshot(model, make_env("credit", 4096, n_agents=4, k_relevant=2))
        stats[baseline] = snapshot
    coma = stats["counterfactual"]["advantages"]
    value = stats["state_value"]["advantages"]
    irrelevant = slice(2, 4)
    assert coma[:, irrelevant].mean(0).abs().max().item() < 0.02  # zero in expectation
    assert value[:, irrelevant].mean(0).abs().max().item() < 0.03  # any baseline is unbiased ...
    # ... but only the counterfactual one keeps the noise of the relevant agents out of the irrelevant ones
    assert coma[:, irrelevant].var(0).max().item() < 0.1 * value[:, irrelevant].var(0).min().item()
    # and it is close to the exact credit for everyone
    error = (coma - stats["counterfactual"]["true_credit"]).pow(2).mean().sqrt().item()
    assert error < 0.05


# --- the actors, determinism, bad input ---------------------------------------------------------


@pytest.mark.parametrize("share", [True, False])
def test_an_agents_action_depends_only_on_its_own_observation(share):
    spec = make_env("vmas:simple_spread", 1, seed=0).spec
    model = COMA(spec, COMAConfig(env="vmas:simple_spread", share=share))
    obs = torch.randn(4, 3, spec.obs_dim, requires_grad=True)
    logits = model.logits(obs)
    for a in range(3):
        (grad,) = torch.autograd.grad(logits[:, a].sum(), obs, retain_graph=True)
        others = [b for b in range(3) if b != a]
        assert grad[:, others].abs().max().item() == 0.0 and grad[:, a].abs().max().item() > 0.0


@pytest.mark.parametrize("baseline", ["counterfactual", "state_value", "independent"])
def test_same_seed_same_run(baseline):
    tiny = dict(env="credit", baseline=baseline, n_agents=3, total_frames=80)
    first, second = train(COMAConfig(**tiny, seed=3), progress=False), train(COMAConfig(**tiny, seed=3), progress=False)
    other = train(COMAConfig(**tiny, seed=4), progress=False)
    strip = lambda curve: [{k: v for k, v in row.items() if k != "seconds"} for row in curve]  # noqa: E731
    assert strip(first.curve) == strip(second.curve)
    assert strip(first.curve) != strip(other.curve)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(baseline="banana"), "baseline"),
        (dict(num_envs=0), "num_envs"),
        (dict(actor_lr=-1.0), "actor_lr"),
        (dict(td_lambda=1.5), "td_lambda"),
        (dict(env="vmas:simple_spread", stop_at=0.9), "stop_at"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        COMAConfig(**kwargs)


def test_bad_environment_settings():
    with pytest.raises(ValueError, match="k_relevant"):
        train(COMAConfig(env="climbing", k_relevant=1), progress=False)
    with pytest.raises(ValueError, match="2 agents"):
        train(COMAConfig(env="climbing", n_agents=3), progress=False)
    with pytest.raises(ValueError, match="discrete"):
        COMA(make_env("vmas:simple_spread", 1, continuous=True, seed=0).spec, COMAConfig(env="vmas:simple_spread"))


# --- learning ----------------------------------------------------------------------------------


def test_coma_learns_the_credit_game():
    result = train(COMAConfig(env="credit", n_agents=4, seed=0, total_frames=2_000), progress=False)
    assert result.eval_return == result.optimum == 1.0
    episodes = episodes_to_optimum(result)
    assert episodes is not None and episodes < 1_000
    assert result.curve[-1]["expected_return"] > 0.95


def test_stop_at_ends_training_at_the_target():
    result = train(COMAConfig(env="credit", n_agents=2, seed=0, total_frames=4_000, stop_at=0.8), progress=False)
    assert result.curve[-1]["expected_return"] >= 0.8 > result.curve[-2]["expected_return"]
    assert result.frames < 4_000


# --- command line -------------------------------------------------------------------------------


def run_coma(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "marlpg.coma", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


@pytest.mark.parametrize(
    "env_args,has_optimum",
    [(["--env", "credit", "--n-agents", "4"], True), (["--env", "climbing"], True), (["--env", "vmas:simple_spread", "--num-envs", "8"], False)],
    ids=["credit", "climbing", "simple_spread"],
)
def test_cli_tiny_budget(tmp_path, env_args, has_optimum):
    out = run_coma(*env_args, "--seed", "1", "--total-frames", "400", "--quiet", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("eval_return=")
    float(lines[-1].split("=")[1])
    assert lines[-2].startswith("optimum=") == has_optimum
    assert (tmp_path / "curve.csv").read_text().startswith("iteration,frames")


def test_cli_rejects_bad_flags(tmp_path):
    out = run_coma("--env", "credit", "--baseline", "banana", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "--baseline" in out.stderr and "banana" in out.stderr and "counterfactual" in out.stderr
    out = run_coma("--env", "credit", "--n-agents", "4", "--k-relevant", "9", "--quiet", "--out", str(tmp_path))
    assert out.returncode != 0 and "--k-relevant" in out.stderr and "k_relevant" not in out.stderr
