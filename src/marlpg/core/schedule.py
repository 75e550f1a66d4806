"""How an on-line algorithm's frame budget divides into iterations (shared by every config in marlpg.algos)."""
from __future__ import annotations


class IterationBudget:
    """For a config with ``num_envs``, ``rollout_steps`` and ``total_frames``: one iteration collects
    ``num_envs * rollout_steps`` frames, and a run takes enough iterations to cover ``total_frames``
    (at least one; the last may overshoot by less than one iteration)."""

    @property
    def frames_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def iterations(self) -> int:
        return max(1, -(-self.total_frames // self.frames_per_iteration))
