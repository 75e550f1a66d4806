"""A replay buffer of batched multi-agent transitions, for off-policy learners (MADDPG).

Every environment step of ``E`` copies adds ``E`` transitions at once. Each transition keeps what
a centralized critic needs: every agent's observation, the global state, the joint action, every
agent's own reward, the next observations and state, and whether the episode ended there. The
storage is a ring of preallocated tensors on one device: once full, the oldest transitions are
overwritten first. Sampling is uniform over what is stored, with replacement, from a caller's
``torch.Generator`` so a seeded run repeats.
"""
from __future__ import annotations

import torch

FIELDS = ("obs", "state", "actions", "rewards", "next_obs", "next_state", "done")


class ReplayBuffer:
    def __init__(self, capacity: int, n_agents: int, obs_dim: int, state_dim: int, action_dim: int, device="cpu"):
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer; got {capacity!r}")
        self.capacity, self.device = capacity, torch.device(device)
        shapes = {
            "obs": (n_agents, obs_dim),
            "state": (state_dim,),
            "actions": (n_agents, action_dim),
            "rewards": (n_agents,),
            "next_obs": (n_agents, obs_dim),
            "next_state": (state_dim,),
            "done": (),
        }
        self.storage = {k: torch.zeros(capacity, *shape, device=self.device) for k, shape in shapes.items()}
        self.position = 0  # where the next transition goes
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, **batch: torch.Tensor) -> None:
        """Store a batch of transitions; every field has the same leading (batch) dimension."""
        if set(batch) != set(FIELDS):
            raise ValueError(f"a transition has the fields {FIELDS}; got {tuple(sorted(batch))}")
        count = batch["obs"].shape[0]
        if count > self.capacity:
            raise ValueError(f"cannot add {count} transitions to a buffer of capacity {self.capacity}")
        index = (self.position + torch.arange(count, device=self.device)) % self.capacity
        for key, value in batch.items():
            store = self.storage[key]
            if tuple(value.shape[1:]) != tuple(store.shape[1:]) or value.shape[0] != count:
                raise ValueError(f"{key} must have shape {(count, *store.shape[1:])}; got {tuple(value.shape)}")
            store[index] = value.to(device=self.device, dtype=store.dtype)
        self.position = (self.position + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` transitions drawn uniformly (with replacement) from the stored ones."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = torch.randint(0, self.size, (batch_size,), generator=generator).to(self.device)
        return {key: store[index] for key, store in self.storage.items()}
