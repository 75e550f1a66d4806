"""marlpg: centralized-critic multi-agent policy gradients, written to be read.

Subpackages
-----------
rendezvous
    The one-step cooperative task of Code 30.7.1: the seed's experiment reproduced
    loop for loop, a vectorized engine (numpy or torch, any device), three critics
    and the sweeps of Exercise 30.7.2.
"""

import os as _os

__version__ = "0.1.0"

# Idle CPU threads of torch's OpenMP pool wait by spinning, and on a machine whose cores other work shares
# the spinning takes CPU from the threads doing the work. Shorter spinning keeps a quiet machine's speed and
# makes a loaded one several times faster (measured in marlpg.core.threads). It takes effect only if torch
# has not been loaded yet; an explicit setting is kept.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")
