"""The algorithms, one file each: MAPPO (and IPPO), COMA, MADDPG (and IDDPG).

Each file follows the book's equations (its docstring states them) and builds on :mod:`marlpg.core`
and :mod:`marlpg.envs` alone; ``python -m marlpg.<name>`` is its command line.
"""
