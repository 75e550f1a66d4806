"""How fast RWARE runs behind the batched protocol, and how much of a MAPPO iteration it takes.

1. Frames per second (one frame: one step of one warehouse copy, all robots) for tiny-2ag,
   tiny-4ag and small-8ag at 1, 4 and 16 copies, three ways, all in this process on the same
   random actions:
   * ``bare``: rware's own ``Warehouse.step`` on a list of copies, actions as Python ints, nothing
     converted (the baseline: what the simulator costs by itself);
   * ``adapter``: :class:`marlpg.envs.rware_env.RwareEnv` (tensors in and out, global state,
     resets, final observations);
   * ``gym sync``: gymnasium's ``SyncVectorEnv`` with same-step autoreset, its observations
     stacked into one tensor (what the adapter could have been built on). SyncVectorEnv keeps one
     scalar reward per copy and refuses rware's list of per-robot rewards, so a wrapper passes
     their sum as the reward and the list in ``info`` (where the adapter would have to read it).
   The ratios against ``bare`` say what each layer costs.
2. The share of a MAPPO iteration (collect + update, marlpg's own functions) spent inside the
   environment's ``step`` (rware's simulation and the adapter's conversions; the speed table says
   how they split).
3. ``--learn``: MAPPO against IPPO (shared actor) on rware-tiny-2ag-v2 for a short budget, a few seeds.

    python benchmarks/bench_rware.py            # speed and iteration share (a few minutes)
    python benchmarks/bench_rware.py --learn --seeds 3 --frames 200000
    python benchmarks/bench_rware.py --learn --seeds 3 --frames 2000000 --ray --csv benchmarks/results/rware_tiny_2ag.csv
    python benchmarks/bench_rware.py --quick    # a smoke run
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from marlpg.algos.mappo import MAPPO, EpisodeTracker, MAPPOConfig, collect, make_optimizers, train, update
from marlpg.envs import make_env

TASKS = ("rware-tiny-2ag-v2", "rware-tiny-4ag-v2", "rware-small-8ag-v2")


def random_actions(steps: int, num_envs: int, robots: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 5, (steps, num_envs, robots), generator=torch.Generator().manual_seed(seed))


def bare_fps(task: str, num_envs: int, actions: torch.Tensor) -> float:
    env = make_env(f"rware:{task}", num_envs, seed=0)
    env.reset()
    copies, lists = env.envs, actions.tolist()
    began = time.perf_counter()
    for step in lists:
        for warehouse, acts in zip(copies, step):
            _, _, done, _, _ = warehouse.step(acts)
            if done:
                warehouse.reset()
    return len(lists) * num_envs / (time.perf_counter() - began)


def adapter_fps(task: str, num_envs: int, actions: torch.Tensor) -> float:
    env = make_env(f"rware:{task}", num_envs, seed=0)
    env.reset()
    began = time.perf_counter()
    for step in actions:
        env.step(step)
    return len(actions) * num_envs / (time.perf_counter() - began)


def gym_sync_fps(task: str, num_envs: int, actions: torch.Tensor) -> float:
    import gymnasium
    import rware  # noqa: F401  (registers the ids)
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    class RobotRewardsInInfo(gymnasium.Wrapper):
        def step(self, action):
            obs, rewards, terminated, truncated, info = self.env.step(action)
            return obs, float(sum(rewards)), terminated, truncated, {**info, "robot_rewards": np.asarray(rewards)}

    vec = SyncVectorEnv([lambda: RobotRewardsInInfo(gymnasium.make(task, disable_env_checker=True))] * num_envs,
                        autoreset_mode=AutoresetMode.SAME_STEP)
    vec.reset(seed=0)
    per_robot = actions.permute(0, 2, 1).numpy()  # gymnasium batches a Tuple action space robot by robot
    began = time.perf_counter()
    for step in per_robot:
        obs, _, terminated, truncated, info = vec.step(tuple(step))
        torch.from_numpy(obs_stack(obs)), torch.from_numpy(robot_rewards(info, num_envs)), torch.from_numpy(terminated | truncated)
    fps = len(per_robot) * num_envs / (time.perf_counter() - began)
    vec.close()
    return fps


def robot_rewards(info: dict, num_envs: int) -> np.ndarray:
    """``[E, n]`` per-robot rewards out of SyncVectorEnv's batched infos (a copy that reset keeps its step's in final_info)."""
    rows = [None] * num_envs
    for source in (info, info.get("final_info", {})):
        for e in np.flatnonzero(source.get("_robot_rewards", [])):
            rows[e] = source["robot_rewards"][e]
    return np.stack(rows).astype(np.float32)


def obs_stack(obs):
    return np.stack(obs, axis=1).astype(np.float32, copy=False)  # [E, n, d] from n arrays [E, d]


def best_of(rounds: int, task: str, num_envs: int, actions: torch.Tensor) -> list[float]:
    """Each way's best frames/s over ``rounds`` interleaved rounds (a shared machine's load only ever slows a round)."""
    ways = (bare_fps, adapter_fps, gym_sync_fps)
    best = [0.0] * len(ways)
    for _ in range(rounds):
        best = [max(b, way(task, num_envs, actions)) for b, way in zip(best, ways)]
    return best


def speed_table(copies: tuple[int, ...], steps: int, rounds: int) -> None:
    print(f"frames/s, random actions, {steps} steps per measurement, best of {rounds} interleaved rounds "
          "(bare: rware's own step loop, the baseline)")
    print(f"{'task':20s} {'E':>3s} {'bare':>8s} {'adapter':>8s} {'gym sync':>9s}  adapter/bare  sync/bare  adapter/adapter(E=1)")
    for task in TASKS:
        robots = int(task.split("-")[2].rstrip("ag"))
        first = None
        for num_envs in copies:
            actions = random_actions(max(2, steps // num_envs), num_envs, robots)
            bare, adapter, sync = best_of(rounds, task, num_envs, actions)
            first = adapter if first is None else first
            print(f"{task:20s} {num_envs:3d} {bare:8.0f} {adapter:8.0f} {sync:9.0f}  "
                  f"{adapter / bare:11.2f}x {sync / bare:9.2f}x {adapter / first:12.2f}x", flush=True)


class TimedEnv:
    """Passes every call to ``env`` and adds up the seconds spent in ``step``."""

    def __init__(self, env):
        self._env, self.seconds = env, 0.0

    def step(self, actions):
        began = time.perf_counter()
        try:
            return self._env.step(actions)
        finally:
            self.seconds += time.perf_counter() - began

    def __getattr__(self, name):
        return getattr(self._env, name)


def iteration_share(task: str, num_envs: int, rollout_steps: int, iterations: int) -> None:
    cfg = MAPPOConfig(env=f"rware:{task}", num_envs=num_envs, rollout_steps=rollout_steps, total_frames=num_envs * rollout_steps,
                      horizon=500, minibatches=min(8, num_envs * rollout_steps))
    env = TimedEnv(make_env(cfg.env, num_envs, seed=0))
    model = MAPPO(env.spec, cfg)
    optimizers, generator = make_optimizers(model, cfg), torch.Generator().manual_seed(0)
    tracker = EpisodeTracker(num_envs, env.spec.n_agents, env.device)
    start = env.reset(seed=0)
    collecting = updating = 0.0
    for _ in range(iterations):
        began = time.perf_counter()
        rollout, start = collect(model, env, start, rollout_steps, tracker)
        middle = time.perf_counter()
        update(model, rollout, optimizers, cfg, generator)
        collecting, updating = collecting + middle - began, updating + time.perf_counter() - middle
    total = collecting + updating
    print(f"{task:20s} E={num_envs:3d} T={rollout_steps}: {total / iterations:6.2f} s per iteration; env.step (rware + adapter) "
          f"{env.seconds / total:5.1%}, rest of collect {(collecting - env.seconds) / total:5.1%}, update {updating / total:5.1%}",
          flush=True)


def random_return(num_envs: int, seed: int) -> float:
    """Deliveries per robot in one 500-step episode of uniformly random actions, averaged over ``num_envs`` copies."""
    env = make_env("rware:rware-tiny-2ag-v2", num_envs, seed=seed)
    env.reset()
    actions = random_actions(env.spec.horizon, num_envs, env.spec.n_agents, seed)
    return torch.stack([env.step(a).reward for a in actions]).sum(0).mean().item()


LEARN_FIELDS = ["method", "seed", "frames", "seconds", "fps", "eval_return", "last_training_return"]


def learning_config(frames: int, num_envs: int, episodes: int, ippo: bool) -> MAPPOConfig:
    return MAPPOConfig(env="rware:rware-tiny-2ag-v2", horizon=500, n_agents=2, total_frames=frames, num_envs=num_envs,
                       rollout_steps=100, eval_episodes=episodes, ippo=ippo, lr=5e-4, entropy_coef=0.01)


def learning(seeds: int, frames: int, num_envs: int, episodes: int, *, ray: bool = False, address: str | None = None,
             csv: str | None = None) -> list[dict]:
    """MAPPO and IPPO over ``seeds`` seeds, each seed a run of its own (one Ray task per seed with ``ray``)."""
    from marlpg.algos import mappo
    from marlpg.book import stored_results
    from marlpg.book.stats import iqm_interval
    from marlpg.scale.jobs import train_seeds

    randoms = [random_return(episodes, 10_000 + seed) for seed in range(seeds)]
    print(f"uniform random policy: {statistics.mean(randoms):.3f} deliveries per robot per episode "
          f"({seeds} x {episodes} episodes)", flush=True)
    print(f"MAPPO vs IPPO on rware-tiny-2ag-v2 (shared actor, 500-step episodes), {frames:,} frames per run, {seeds} seeds"
          f"{' as Ray tasks' if ray else ''}; return = deliveries per robot in a 500-step deterministic episode", flush=True)
    about = stored_results.provenance(env="rware:rware-tiny-2ag-v2", random_return=f"{statistics.mean(randoms):.4f}")
    rows = []
    for name, ippo in (("MAPPO", False), ("IPPO", True)):
        results = train_seeds(mappo, learning_config(frames, num_envs, episodes, ippo), range(seeds), ray=ray,
                              address=address)
        for seed, result in enumerate(results):
            train_returns = [row["return"] for row in result.curve if row["return"] == row["return"]]
            rows.append({"method": name, "seed": seed, "frames": result.frames, "seconds": round(result.seconds, 1),
                         "fps": round(result.frames / result.seconds), "eval_return": round(result.eval_return, 4),
                         "last_training_return": round(statistics.mean(train_returns[-5:]), 4) if train_returns else ""})
            print(f"  {name} seed {seed}: eval {result.eval_return:.3f}, last training episodes "
                  f"{rows[-1]['last_training_return']}, {result.seconds / 60:.1f} min, {rows[-1]['fps']} frames/s", flush=True)
        if csv:  # written after each method, so that an interrupted benchmark keeps what it measured
            about["load_at_end"] = f"{os.getloadavg()[0]:.2f}"
            stored_results.write(csv, rows, LEARN_FIELDS, about)
    for name in ("MAPPO", "IPPO"):
        finals = [r["eval_return"] for r in rows if r["method"] == name]
        print(f"{name}: eval return {iqm_interval(finals).format('.3f')}")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run at a tiny size")
    parser.add_argument("--steps", type=int, default=480, help="environment steps (all copies) per speed measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per measurement (the best counts)")
    parser.add_argument("--learn", action="store_true", help="MAPPO vs IPPO on rware-tiny-2ag-v2 instead of the speed tables")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--ray", action="store_true", help="--learn: one Ray task per seed (a local Ray, or --address)")
    parser.add_argument("--address", help="--learn --ray: the address of a running Ray cluster (default: start a local one)")
    parser.add_argument("--csv", help="--learn: write one row per run to this file (e.g. benchmarks/results/rware_tiny_2ag.csv)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.learn:
        learning(args.seeds, args.frames, args.num_envs, episodes=16, ray=args.ray, address=args.address, csv=args.csv)
        return
    if args.quick:
        learning(1, 400, 2, episodes=2)
    copies, steps, rounds, iterations, rollout = ((1, 2), 8, 1, 1, 5) if args.quick else ((1, 4, 16), args.steps, args.rounds, 3, 25)
    speed_table(copies, steps, rounds)
    print("share of a MAPPO iteration (collect + update, one thread)")
    for task in (TASKS[:1] if args.quick else TASKS):
        iteration_share(task, 2 if args.quick else 16, rollout, iterations)


if __name__ == "__main__":
    main()
