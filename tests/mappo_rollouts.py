"""Hand-made MAPPO rollouts for the update tests (tests/test_updates.py, tests/test_mappo_options.py)."""
from __future__ import annotations

import torch

from marlpg.algos import mappo


def one_step_rollout(model, obs, actions, rewards):
    """T = 1: every copy ends (terminates) after one step; values from the model's critic."""
    E = obs.shape[0]
    state = torch.cat([obs.flatten(1), torch.zeros(E, 1)], dim=-1)
    with torch.no_grad():
        log_probs = model.policy(obs).log_prob(actions)
    rollout = mappo.Rollout(
        obs=obs[None], state=state[None], actions=actions[None], log_probs=log_probs[None], values=None,
        rewards=rewards[None], dones=torch.ones(1, E, dtype=torch.bool), last_value=None,
    )
    return mappo.with_values(model, rollout, (obs, state))
