"""Recurrent (GRU) networks and the sequence chunks they are trained on.

A recurrent network reads one input per step and carries a hidden state h from step to step:

    z_t = tanh(W_e x_t + b_e)                              (encoder)
    h'  = (1 - s_t) h_{t-1}                                (s_t = 1 where an episode starts at t)
    r_t = sigmoid(W_r z_t + U_r h' + b_r)                  (reset gate)
    g_t = sigmoid(W_g z_t + U_g h' + b_g)                  (update gate)
    n_t = tanh(W_n z_t + b_n + r_t * (U_n h' + c_n))
    h_t = (1 - g_t) * n_t + g_t * h'                       (torch's GRUCell)
    y_t = W_o h_t + b_o                                    (head: logits, a mean or values)

so nothing of a finished episode reaches the next one: the state is zeroed exactly at the first step
of every episode, also in the middle of a sequence.

Training runs over *chunks*: a rollout of T steps in E copies is cut, per copy, into C = ceil(T / L)
consecutive pieces of L steps. Each chunk starts from the hidden state stored when that step was
collected and replays its L steps with the resets s_t above. The last chunk of a copy is padded
to L steps when L does not divide T; ``valid`` marks the real steps (padding is never used in a loss).
Chunks of the same copy never join up with another copy's steps.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from marlpg.core.networks import orthogonal


class GRUNet(nn.Module):
    """Encoder, one GRU cell and a linear head over rows of inputs ``[L, *batch, d]``.

    The encoder's width is ``hidden[0]`` and the memory's size is ``hidden[-1]``.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float = 1.0):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError(f"a recurrent network needs at least one hidden size; got {tuple(hidden)!r}")
        width, self.hidden_size = int(hidden[0]), int(hidden[-1])
        self.encoder = nn.Sequential(orthogonal(nn.Linear(in_dim, width), math.sqrt(2)), nn.Tanh())
        self.cell = nn.GRUCell(width, self.hidden_size)
        self.head = orthogonal(nn.Linear(self.hidden_size, out_dim), out_gain)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``[L, *batch, out]`` and the last hidden state ``[*batch, H]``.

        ``hidden`` ``[*batch, H]`` is the state before the first step; ``starts`` ``[L, *batch]``
        (bool) marks the steps where an episode begins, where the state is zeroed first.
        """
        batch = inputs.shape[1:-1]
        if tuple(starts.shape) != (inputs.shape[0], *batch) or tuple(hidden.shape) != (*batch, self.hidden_size):
            raise ValueError(
                f"inputs {tuple(inputs.shape)} need starts {(inputs.shape[0], *batch)} and hidden "
                f"{(*batch, self.hidden_size)}; got starts {tuple(starts.shape)} and hidden {tuple(hidden.shape)}"
            )
        encoded = self.encoder(inputs)
        states = []
        h = hidden
        for t in range(inputs.shape[0]):
            h = reset_where(h, starts[t])
            h = self.cell(encoded[t].reshape(-1, encoded.shape[-1]), h.reshape(-1, self.hidden_size)).reshape(h.shape)
            states.append(h)
        return self.head(torch.stack(states)), h


def reset_where(hidden: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """``hidden`` ``[*batch, H]`` with the rows where ``starts`` ``[*batch]`` holds set to zero."""
    return hidden * (~starts.bool()).unsqueeze(-1).to(hidden.dtype)


class RecurrentActor(nn.Module):
    """pi(u_t | o_1..o_t) from a GRU: logits (discrete) or a mean with a learned log sigma (continuous)."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int], continuous: bool, init_log_std: float = -0.5):
        super().__init__()
        self.core = GRUNet(in_dim, hidden, n_actions, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((n_actions,), init_log_std)) if continuous else None

    @property
    def hidden_size(self) -> int:
        return self.core.hidden_size

    def forward(self, inputs, hidden, starts):
        return self.core(inputs, hidden, starts)

    def deterministic(self, out: torch.Tensor) -> torch.Tensor:
        """The greedy action from the head's output: the argmax, or the mean clipped to [-1, 1]."""
        return out.argmax(-1) if self.log_std is None else out.clamp(-1, 1)


# --- chunks --------------------------------------------------------------------------------------


def chunk_count(steps: int, chunk_length: int) -> int:
    if not isinstance(chunk_length, int) or isinstance(chunk_length, bool) or chunk_length < 1:
        raise ValueError(f"chunk_length must be a positive integer; got {chunk_length!r}")
    return -(-steps // chunk_length)


def to_chunks(x: torch.Tensor, chunk_length: int, fill: float | bool = 0) -> torch.Tensor:
    """``[T, E, ...]`` -> ``[L, C * E, ...]``: column ``c * E + e`` is steps ``cL .. cL + L - 1`` of copy e.

    Steps past T (padding of the last chunk) hold ``fill``.
    """
    steps, copies = x.shape[:2]
    chunks = chunk_count(steps, chunk_length)
    padded = x.new_full((chunks * chunk_length, *x.shape[1:]), fill)
    padded[:steps] = x
    return padded.reshape(chunks, chunk_length, *x.shape[1:]).transpose(0, 1).reshape(chunk_length, chunks * copies, *x.shape[2:])


def chunk_initial_states(hidden: torch.Tensor, chunk_length: int) -> torch.Tensor:
    """The stored states ``[T, E, ...]`` at each chunk's first step, ``[C * E, ...]`` in :func:`to_chunks`' order."""
    return hidden[::chunk_length].flatten(0, 1)


def valid_steps(steps: int, copies: int, chunk_length: int, device=None) -> torch.Tensor:
    """``[L, C * E]`` bool: true on the real steps, false on the padding."""
    return to_chunks(torch.ones(steps, copies, dtype=torch.bool, device=device), chunk_length, fill=False)
