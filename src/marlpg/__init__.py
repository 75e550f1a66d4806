"""marlpg: centralized-critic multi-agent policy gradients, written to be read.

Subpackages
-----------
rendezvous
    The one-step cooperative task of Code 30.7.1: the seed's experiment reproduced
    loop for loop, a vectorized engine (numpy or torch, any device), three critics
    and the sweeps of Exercise 30.7.2.
"""

__version__ = "0.1.0"
