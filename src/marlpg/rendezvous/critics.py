r"""Three critics for the rendezvous task, named for what they are allowed to see.

Every critic turns a batch of team rewards into per-agent advantages A_i that multiply
agent i's score function in the policy gradient

.. math::

    \hat g_i = \frac{1}{B}\sum_b A_{b,i}\,\nabla_{\mu_i}\log\pi_i(a_{b,i})
             = \frac{1}{B}\sum_b A_{b,i}\,\frac{a_{b,i}-\mu_i}{\sigma^2}.

All three keep the estimate unbiased (up to the factor noted for ``state-value``): a baseline that does not depend on
agent i's own action leaves E[g_i] unchanged. They differ in how much of the reward's
variation they explain away, and so in the variance of g_i.

* ``independent``: agent i's critic sees only its own stream of rewards. Its baseline
  is a running average b_i <- b_i + rate * (mean_b R - b_i). The seed's second branch.
* ``state-value``: sees the joint state, here the agents' policies, but not the joint
  action, so the best it can do is V = E_a[R], estimated by the batch mean. This is the
  seed's "central critic": it never looks at anyone's action. (The batch mean includes
  the rollout's own reward, which shrinks the expected gradient by the factor
  (B - 1)/B, 31/32 at B = 32; the seed does this, so the course keeps it.)
* ``joint-action``: sees every agent's action and gives agent i the counterfactual
  baseline that averages the team reward over agent i's own action, the others held
  fixed (COMA's idea, computed exactly for this quadratic reward):

  .. math::

      b_i(\mathbf a_{-i}) = \mathbb E_{a_i'\sim\pi_i} R(a_i', \mathbf a_{-i})
      \quad\Rightarrow\quad
      A_i = \partial_i R(\mathbf a)\,(a_i-\mu_i) + k\big((a_i-\mu_i)^2 + \sigma^2\big),
      \qquad k = 1 + c(n-1).

  (Expand R to second order in a_i around the sampled action; the expansion is exact
  because R is quadratic.) Every term of A_i is proportional to agent i's own noise
  a_i - mu_i or to its variance: the other agents' noise enters only multiplied by
  agent i's, and the reward's variation that agent i did not cause is gone.

Each ``advantages(rollouts, task)`` returns [..., B] when every agent gets the same
advantage, or [..., B, n] when each agent gets its own. Arrays are numpy arrays or
torch tensors.
"""
from __future__ import annotations

CRITICS = ("independent", "state-value", "joint-action")


def batch_mean(rewards):
    """Mean over the batch axis of [..., B], kept as [..., 1]."""
    return rewards.sum(-1)[..., None] / rewards.shape[-1]


class IndependentCritic:
    """Per-agent running average of the team reward: the seed's independent critic."""

    name = "independent"

    def __init__(self, mu, rate: float):
        # n per-agent averages that all start at 0 and all track the same team reward
        # stay equal forever, so one number per run holds all of them.
        self.baseline = mu[..., :1] * 0  # [..., 1]
        self.rate = rate

    def advantages(self, rollouts, task):
        return rollouts.rewards - self.baseline

    def observe(self, rewards):
        self.baseline = self.baseline + self.rate * (batch_mean(rewards) - self.baseline)


class StateValueCritic:
    """V(x) = E_a[R]: the batch mean. Sees the policies, never an action."""

    name = "state-value"

    def __init__(self, mu, rate: float):
        pass

    def advantages(self, rollouts, task):
        return rollouts.rewards - batch_mean(rollouts.rewards)

    def observe(self, rewards):
        pass


class JointActionCritic:
    """Exact counterfactual baseline E_{a_i'} R(a_i', a_-i), one per agent."""

    name = "joint-action"

    def __init__(self, mu, rate: float):
        pass

    def advantages(self, rollouts, task):
        curvature_term = task.own_curvature * (rollouts.own_noise_sq + rollouts.sigma**2)
        return rollouts.reward_gradient(task) * rollouts.own_noise + curvature_term

    def observe(self, rewards):
        pass


CRITIC_CLASSES = {cls.name: cls for cls in (IndependentCritic, StateValueCritic, JointActionCritic)}


def make_critic(name: str, mu, rate: float = 0.02):
    if name not in CRITIC_CLASSES:
        raise ValueError(f"critic must be one of {CRITICS}, got {name!r}")
    return CRITIC_CLASSES[name](mu, rate)
