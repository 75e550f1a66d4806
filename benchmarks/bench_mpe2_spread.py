"""Cross-check on PettingZoo's mpe2 ``simple_spread_v3``: marlpg's MAPPO against the level reported for MAPPO on Spread.

The MAPPO paper (Yu et al., 2022) trains on the MPE "Spread" task of its own repository
(marlbenchmark/on-policy) and logs the 25-step episode return of the *team-summed* reward, in
which every agent is also charged -1 per step for "colliding" with itself (the collision check
has no ``a != agent`` test). mpe2's ``simple_spread_v3`` pays agent i

    r_i = -(1 - lam) D - lam c_i,   lam = local_ratio = 0.5,

with D the sum over landmarks of the nearest agent's distance and c_i agent i's collisions with
others; on-policy pays every agent -N D - N - C (C = sum of all agents' collisions). Summing over
T steps and averaging over agents, our unit G (mean episode return per agent) converts exactly, for
lam = 0.5, as

    G_on-policy = 2 N G - N T        (N = 3, T = 25:  G_on-policy = 6 G - 75).

On-policy's logged curves for Spread settle around -120 to -110 in its unit after 20M steps
(reported by users in the repository's issues #49, #112 and #131); the same conversion puts our
random and scripted references in that unit too. Landmarks spawn in 0.8 U(-1, 1) there and in
U(-1, 1) here, which makes on-policy's task slightly easier.

    python benchmarks/bench_mpe2_spread.py            # 3 seeds x 1M frames (mpe2 is a Python loop: slow)
    python benchmarks/bench_mpe2_spread.py --quick    # a smoke run
"""
from __future__ import annotations

import argparse
import statistics

from marlpg.algos.mappo import MAPPOConfig, gap_closed, train

N_AGENTS, HORIZON = 3, 25
REPORTED_ON_POLICY = (-120.0, -110.0)  # range users report for MAPPO on Spread, on-policy's unit


def to_on_policy_unit(g: float, n_agents: int = N_AGENTS, horizon: int = HORIZON) -> float:
    """Mean episode return per agent on mpe2 (local_ratio 0.5) -> on-policy's logged episode reward."""
    return 2 * n_agents * g - n_agents * horizon


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=64)
    args = parser.parse_args(argv)
    frames, seeds, num_envs, episodes = args.frames, args.seeds, args.num_envs, 200
    if args.quick:
        frames, seeds, num_envs, episodes = 200, 1, 4, 4
    results = []
    for seed in range(seeds):
        cfg = MAPPOConfig(env="mpe2:simple_spread_v3", seed=seed, total_frames=frames, num_envs=num_envs, eval_episodes=episodes)
        result = train(cfg, progress=False)
        results.append(result)
        print(
            f"seed {seed}: eval G {result.eval_return:.3f} (on-policy unit {to_on_policy_unit(result.eval_return):.1f}), "
            f"gap {gap_closed(result.eval_return, result.reference):.3f}, {result.seconds:.0f} s, "
            f"{result.frames / result.seconds:.0f} frames/s",
            flush=True,
        )
    random_g, scripted_g = results[0].reference
    mean_g = statistics.mean(r.eval_return for r in results)
    print(f"random   G {random_g:8.3f}  on-policy unit {to_on_policy_unit(random_g):7.1f}")
    print(f"scripted G {scripted_g:8.3f}  on-policy unit {to_on_policy_unit(scripted_g):7.1f}")
    print(f"MAPPO    G {mean_g:8.3f}  on-policy unit {to_on_policy_unit(mean_g):7.1f}  (mean of {seeds} seeds, {frames:,} frames each)")
    low, high = REPORTED_ON_POLICY
    print(f"reported for MAPPO on Spread: {low:.0f} to {high:.0f} in on-policy's unit after 20M steps")
    print(f"marlpg MAPPO / reported midpoint (on-policy unit, closer to 1x is closer): "
          f"{to_on_policy_unit(mean_g) / ((low + high) / 2):.2f}x")


if __name__ == "__main__":
    main()
