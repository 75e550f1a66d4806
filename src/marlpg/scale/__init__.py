"""Scaling out: seeds and sweeps as Ray tasks (``jobs``), a synchronous actor-learner split
(``actor_learner``) and the same MAPPO in RLlib (``rllib_mappo``) to compare against."""
