"""Where the vectorized engine runs: numpy, or torch on a named device.

Both backends receive the same noise, drawn by numpy generators in the seed's order,
so they compute the same numbers; torch can put them on a GPU.
"""
from __future__ import annotations

import numpy as np

BACKENDS = ("numpy", "torch")


def resolve(backend: str, device: str | None):
    """Check the pair and return (array module, torch device or None)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise ValueError(f"the numpy backend runs on the CPU only; got device={device!r} (use backend='torch')")
        return np, None
    import torch

    name = device or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:<index>' or 'auto', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asks for CUDA, but torch sees no CUDA GPU here; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} does not exist: torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:<index>' or 'auto', got {device!r}")
    return torch, dev


def to_backend(array: np.ndarray, xp, device):
    if xp is np:
        return array
    return xp.from_numpy(np.ascontiguousarray(array)).to(device)


def to_numpy(array) -> np.ndarray:
    if isinstance(array, np.ndarray):
        return array
    return array.detach().cpu().numpy()


def zeros_like(array, leading: int):
    """Zeros of shape [leading, *array.shape] with array's dtype and device."""
    if isinstance(array, np.ndarray):
        return np.zeros((leading, *array.shape), dtype=array.dtype)
    import torch

    return torch.zeros((leading, *array.shape), dtype=array.dtype, device=array.device)
