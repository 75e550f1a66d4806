"""MAPPO as an actor-learner system on Ray: rollout workers collect, one learner updates.

K rollout workers (Ray actors, one CPU each) step E/K environment copies apiece with a copy of the
actors, and record for every step and copy what the learner's centralized critic needs:

    the joint observation (o_1..o_n), the global state x, the joint action (u_1..u_n),
    every agent's reward r_a, and the behaviour policy's log-probabilities log mu(u_a | o_a).

The learner forms GAE(lambda) advantages from V(x) (the worker's values when its critic copy is current,
recomputed with the learner's critic when it is stale) and runs PPO's clipped update
(``marlpg.algos.mappo.update``) on the rollouts, then sends new weights to the workers.
Two ways to schedule that:

* ``mode="sync"`` (on-policy): every iteration the learner broadcasts theta_k, all K workers collect
  with it, and the learner updates on their rollouts side by side. This is ``marlpg.algos.mappo`` with the
  batch of copies split over K processes (with one worker it is ``marlpg.algos.mappo.train`` exactly); the
  learner waits for the slowest worker, and the workers wait for the update.
* ``mode="async"``: the learner updates on whichever worker's rollout arrives first and sends the
  new weights back to that worker alone; the others keep collecting with the weights they have.
  Nobody waits, but a rollout can come from a policy ``lag`` updates old. PPO's ratio
  pi_theta(u|o) / mu(u|o) is taken against the log-probabilities the worker recorded, so the clipped
  surrogate stays an importance-weighted step from the policy that actually acted. This is not
  APPO's clipping: RLlib's APPO clips pi_theta / pi_target against a slowly updated target policy
  (the behaviour policy enters through a separately clipped importance weight) and takes V-trace
  advantages (Espeholt et al., 2018); here the ratio is to the behaviour policy itself and the
  targets are plain GAE, without V-trace's off-policy correction. Each update sees one worker's
  rollout, E/K copies, so there are K times as many updates of a K-th the size.

Needs the optional extra: ``pip install -e .[ray]``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace

import torch

from marlpg.core.seeding import resolve_device, seed_everything
from marlpg.core.threads import cpu_threads, update_thread_count
from marlpg.core.runlog import OUT_HELP, default_run_dir, write_curve
from marlpg.scale.jobs import RayNotInstalled, ray_session
from marlpg.algos.mappo import (
    MAPPO, EpisodeTracker, MAPPOConfig, Rollout, TrainResult, collect, evaluate, make_envs, make_optimizers, update,
    with_values,
)

__all__ = [
    "train", "RolloutWorker", "refresh_values", "side_by_side", "synchronous_rollouts", "asynchronous_rollouts",
    "ActorLearnerResult", "MODES",
]

MODES = ("sync", "async")
WORKER_SEED_STRIDE = 7_919  # worker i's environments and sampling use seed + i * stride


class RolloutWorker:
    """One actor of the system: its own environment copies and a copy of the model, no optimizer."""

    def __init__(self, cfg: MAPPOConfig, index: int):
        torch.set_num_threads(1)
        seed = cfg.seed + index * WORKER_SEED_STRIDE
        # Built in the order marlpg.algos.mappo.train builds, so one worker replays train's random draws.
        seed_everything(seed)
        self.env, _ = make_envs(replace(cfg, seed=seed), torch.device("cpu"))
        self.model = MAPPO(self.env.spec, cfg)
        self.tracker = EpisodeTracker(cfg.num_envs, self.env.spec.n_agents, "cpu")
        self.start = self.env.reset(seed=seed)
        self.steps = cfg.rollout_steps

    def ready(self) -> bool:
        """Returns once the worker is built (its process has imported torch and made its environments)."""
        return True

    def collect(self, weights: dict, version: int):
        """A rollout with ``weights`` (policy version ``version``): (rollout, next start, version, episode returns)."""
        self.model.load_state_dict(weights)
        rollout, self.start = collect(self.model, self.env, self.start, self.steps, self.tracker)
        return rollout, self.start, version, self.tracker.pop_returns()


@torch.no_grad()
def refresh_values(model: MAPPO, rollout: Rollout, next_start) -> Rollout:
    """The rollout with V(x) from the learner's current critic (de-normalized), for GAE."""
    return with_values(model, rollout, next_start)


def side_by_side(rollouts: list[Rollout]) -> Rollout:
    """K workers' rollouts as one, copies side by side (time is axis 0, copies axis 1)."""
    joined = {}
    for name in Rollout.__dataclass_fields__:
        parts = [getattr(r, name) for r in rollouts]
        if name == "last_value":
            joined[name] = torch.cat(parts, dim=0)
        elif any(part is None for part in parts):
            joined[name] = _none_or_filled(name, rollouts)
        else:
            joined[name] = torch.cat(parts, dim=1)
    return Rollout(**joined)


def _none_or_filled(name: str, rollouts: list[Rollout]):
    """A field some workers left out: None when all did, else the others' defaults filled in."""
    parts = [getattr(r, name) for r in rollouts]
    if all(part is None for part in parts):
        return None
    if name == "final_values":  # no truncation in that worker's rollout: the value is never used
        return torch.cat([p if p is not None else torch.zeros_like(r.values) for p, r in zip(parts, rollouts)], dim=1)
    raise ValueError(f"workers disagree on whether their rollouts carry {name!r}")


@dataclass
class ActorLearnerResult(TrainResult):
    workers: int = 1
    mode: str = "sync"


def train(
    cfg: MAPPOConfig,
    workers: int = 2,
    mode: str = "sync",
    ray_address: str | None = None,
) -> ActorLearnerResult:
    """MAPPO for ``cfg.total_frames`` frames with ``workers`` Ray rollout workers and one learner.

    ``cfg.num_envs`` copies are split evenly over the workers. The learner runs in this process (on
    ``cfg.device``); the workers on the CPUs of the Ray runtime (a local instance, or the cluster at
    ``ray_address``). Each curve row adds ``lag``: how many updates old the policy that collected the
    row's data was (always 0 when synchronous).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1 or cfg.num_envs % workers:
        raise ValueError(f"workers must be a positive integer dividing num_envs={cfg.num_envs}; got {workers!r}")
    worker_cfg = replace(cfg, num_envs=cfg.num_envs // workers, device="cpu")
    if mode == "async":  # every update sees one worker's rollout
        cfg = replace(cfg, num_envs=worker_cfg.num_envs)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    _, eval_env = make_envs(cfg, device)
    model = MAPPO(eval_env.spec, cfg).to(device)
    optimizers = make_optimizers(model, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    result = ActorLearnerResult(cfg, model, workers=workers, mode=mode)
    threads = update_thread_count(cfg.update_threads)
    with ray_session(ray_address) as ray:
        actors = [ray.remote(num_cpus=1)(RolloutWorker).remote(worker_cfg, i) for i in range(workers)]
        weights = lambda: ray.put({k: v.cpu() for k, v in model.state_dict().items()})  # noqa: E731
        ray.get([actor.ready.remote() for actor in actors])  # start the clock once every worker is up
        began = time.perf_counter()
        rollouts = synchronous_rollouts if mode == "sync" else asynchronous_rollouts
        for version, (rollout, next_start, lag, returns) in enumerate(rollouts(ray, actors, weights, cfg.iterations)):
            rollout = _to(rollout, device)
            if lag:  # the worker's critic copy was stale
                rollout = refresh_values(model, rollout, tuple(t.to(device) for t in next_start))
            with cpu_threads(threads):
                stats = update(model, rollout, optimizers, cfg, generator)
            result.frames += rollout.rewards.shape[0] * rollout.rewards.shape[1]
            episode_return = returns.mean().item() if len(returns) else float("nan")
            result.curve.append({
                "iteration": version + 1, "frames": result.frames, "seconds": round(time.perf_counter() - began, 3),
                "return": episode_return, "lag": lag, **stats,
            })
        result.seconds = time.perf_counter() - began
        for actor in actors:
            ray.kill(actor)
    with cpu_threads(1):
        result.eval_return = evaluate(model, eval_env, 10_000 + cfg.seed)
    return result


def synchronous_rollouts(ray, actors, weights, iterations: int):
    """Broadcast, wait for every worker, yield their rollouts side by side: lag is always 0."""
    for version in range(iterations):
        current = weights()  # one copy in Ray's object store, read by every worker
        parts = ray.get([actor.collect.remote(current, version) for actor in actors])
        rollouts, starts, _, returns = zip(*parts)
        next_start = tuple(torch.cat(tensors, dim=0) for tensors in zip(*starts))
        yield side_by_side(list(rollouts)), next_start, 0, torch.cat(returns)


def asynchronous_rollouts(ray, actors, weights, iterations: int):
    """Yield each rollout as it arrives; only the worker that sent it gets the newer weights."""
    pending = {actor.collect.remote(weights(), 0): actor for actor in actors}
    for version in range(iterations):
        [ready], _ = ray.wait(list(pending), num_returns=1)
        actor = pending.pop(ready)
        rollout, next_start, behaviour_version, returns = ray.get(ready)
        yield rollout, next_start, version - behaviour_version, returns
        if version + 1 < iterations:  # weights() is called after the learner's update of this rollout
            pending[actor.collect.remote(weights(), version + 1)] = actor


def _to(rollout: Rollout, device: torch.device) -> Rollout:
    moved = {name: getattr(rollout, name) for name in rollout.__dataclass_fields__}
    return Rollout(**{name: None if value is None else value.to(device) for name, value in moved.items()})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m marlpg.scale.actor_learner", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default=MAPPOConfig.env)
    parser.add_argument("--total-frames", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=None, help="copies in all, split over the workers (default: the task's, 256 on the particle tasks)")
    parser.add_argument("--workers", type=int, default=2, help="Ray rollout workers (one CPU each)")
    parser.add_argument("--mode", default="sync", help=f"one of {MODES}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="the learner's device: cpu, cuda, cuda:N or auto")
    parser.add_argument("--ray-address", default=None, metavar="ADDR", help="a Ray cluster; default: a local instance")
    parser.add_argument("--out", default=None, help=OUT_HELP.format(algo="actor_learner"))
    args = parser.parse_args(argv)
    args.out = str(default_run_dir("actor_learner")) if args.out is None else args.out
    try:
        cfg = MAPPOConfig(env=args.env, total_frames=args.total_frames, num_envs=args.num_envs, seed=args.seed, device=args.device)
        result = train(cfg, workers=args.workers, mode=args.mode, ray_address=args.ray_address)
    except (ValueError, RayNotInstalled) as error:
        raise SystemExit(f"error: {error}") from None
    lags = [row["lag"] for row in result.curve]
    print(f"curve={write_curve(f'{args.out}/curve.csv', result.curve)}", file=sys.stderr)
    print(f"workers={args.workers} mode={args.mode} updates={len(result.curve)}")
    print(f"frames={result.frames} seconds={result.seconds:.1f} fps={result.frames / result.seconds:.0f}")
    print(f"lag_mean={sum(lags) / len(lags):.2f} lag_max={max(lags)}")
    print(f"eval_return={result.eval_return:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
