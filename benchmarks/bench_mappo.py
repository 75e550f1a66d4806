"""MAPPO on VMAS simple_spread: marlpg's own implementation against BenchMARL's, in this one process.

Both learners train on the same task with the same budget and are timed here, one after the
other, so the ratios (marlpg / BenchMARL) compare like with like on this machine.

    python benchmarks/bench_mappo.py                # full size (about 12-20 min on a 2-core CPU)
    python benchmarks/bench_mappo.py --threads 1    # steadier timings on a machine shared with others
    python benchmarks/bench_mappo.py --quick        # a smoke run (seconds)

Needs BenchMARL 1.5.2 (with torchrl 0.11.1 and tensordict 0.11.0; see import_benchmarl below).

What is the same on both sides
  task      VMAS simple_spread, 3 agents, discrete actions (9 per agent), 25-step episodes
  batch     256 vectorized environments x 25 steps = 6,400 frames per iteration
            (a frame is one step of one environment copy, all agents together: TorchRL's count)
  update    marlpg's defaults, read from marlpg.algos.mappo.MAPPOConfig and given to BenchMARL: epochs,
            minibatches per epoch, learning rate, gamma, GAE lambda, PPO clip, entropy bonus, gradient
            norm clip; Adam with eps 1e-5; separate actor and critic optimizers, each norm-clipped
  actor     MLP 64-64 tanh, one network shared by the agents (parameter sharing)
  critic    MLP 128-128 tanh on the global observation (every agent's observation concatenated),
            one network shared by the agents (centralized)
  eval      deterministic (arg-max) policy, 200 episodes, mean episode return per agent

Measured
  frames/s of training (collection + updates; evaluations are excluded on both sides), the mean
  episode return per agent of the training episodes and of the deterministic evaluation at equal
  frames, and the training seconds until the training return first closes 25%, 50% and 85% of the
  gap between the random and the scripted policy (marlpg.envs.reference). BenchMARL runs first;
  when it hits its wall-time cap (--benchmarl-seconds) before the frame budget, marlpg is also
  evaluated at the frames BenchMARL reached, so the evaluation returns still compare at equal
  frames. At the end, BenchMARL's own default MAPPO configuration is timed for reference.

What is not the same (read before quoting the ratios)
  * marlpg normalizes the value targets (running mean/std) and the advantages (per batch);
    BenchMARL's MAPPO does neither (its ClipPPOLoss is built with normalize_advantage=False).
  * marlpg's shared actor sees a one-hot agent ID next to the observation; BenchMARL's does not.
  * marlpg's critic input is the concatenated observations plus a time feature (t / horizon) and it
    has one output per agent; BenchMARL's critic sees the concatenated observations only and has one
    output, copied to every agent. (simple_spread's reward is shared, so the targets coincide.)
  * Initialization: marlpg is orthogonal (small output gain on the actor); BenchMARL uses
    PyTorch's default Linear initialization.
  * Critic loss: marlpg 0.5 x squared error in normalized units; BenchMARL squared error (weight 1).
  * Timing is of each library as a whole: BenchMARL's includes TorchRL's collector and TensorDict
    machinery, which is part of what is compared. One seed each: returns vary between seeds.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import logging
import os
import platform
import tempfile
import time
import warnings

import torch

try:
    import benchmarl.experiment.experiment as _benchmarl_experiment
    from benchmarl.experiment import Callback as _Callback

    # BenchMARL's training loop draws a tqdm progress bar with no option to turn it off; silence it here.
    _benchmarl_experiment.tqdm = functools.partial(_benchmarl_experiment.tqdm, disable=True)
    _BENCHMARL_ERROR = None
except ImportError as _error:  # reported by main(), so that --help still works
    _Callback, _BENCHMARL_ERROR = object, _error
# After the imports, which install filters of their own: TorchRL's deprecation notices are not ours to fix.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(torchrl|tensordict|benchmarl)")
logging.getLogger("torchrl").setLevel(logging.WARNING)  # "Initialized LazyTensorStorage ..."

N_AGENTS = 3
NUM_ENVS = 256
HORIZON = 25
FRAMES_PER_BATCH = NUM_ENVS * HORIZON  # 6,400
ADAM_EPS = 1e-5  # what marlpg.algos.mappo.train gives Adam
ACTOR_HIDDEN = (64, 64)
CRITIC_HIDDEN = (128, 128)
EVAL_EPISODES = 200
THRESHOLDS = (0.25, 0.5, 0.85)  # fractions of the random-to-scripted gap; the last is the headline

# Used only while marlpg.envs.reference is unavailable: rounded mean episode returns per agent of
# the uniform random and the scripted policies on this task (3 agents, discrete, 25 steps).
FALLBACK_REFERENCE = (-145.0, -80.0)


def reference_returns() -> tuple[tuple[float, float], str]:
    try:
        from marlpg.envs.reference import reference_returns as compute
    except ImportError:
        return FALLBACK_REFERENCE, "fallback constants, marlpg.envs.reference not importable"
    random_return, scripted_return = compute("vmas:simple_spread", n_agents=N_AGENTS, continuous=False)
    return (float(random_return), float(scripted_return)), "marlpg.envs.reference"


def gap(value: float, reference: tuple[float, float]) -> float:
    random_return, scripted_return = reference
    return (value - random_return) / (scripted_return - random_return)


def first_reaching(curve: list[dict], fraction: float, reference: tuple[float, float]) -> dict | None:
    """The first row of ``curve`` (frames, seconds, return) whose return closes ``fraction`` of the gap."""
    for row in curve:
        if row["return"] == row["return"] and gap(row["return"], reference) >= fraction:
            return row
    return None


def row_at(curve: list[dict], frames: int) -> dict:
    """The last row of ``curve`` at or before ``frames``."""
    return [row for row in curve if row["frames"] <= frames][-1]


# ------------------------------------------------------------------------------------------ marlpg
def marlpg_config(frames: int, seed: int, eval_every: int = 0):
    from marlpg.algos.mappo import MAPPOConfig

    cfg = MAPPOConfig(env="vmas:simple_spread", n_agents=N_AGENTS, num_envs=NUM_ENVS, horizon=HORIZON,
                      total_frames=frames, seed=seed, actor_hidden=ACTOR_HIDDEN, critic_hidden=CRITIC_HIDDEN, device="cpu")
    cfg.rollout_steps = HORIZON  # one episode per environment per iteration: 6,400 frames
    cfg.eval_episodes = EVAL_EPISODES
    cfg.eval_every = eval_every
    return cfg


def ppo_settings(cfg) -> dict:
    """The update settings both learners use: marlpg's defaults, read from its config, given to BenchMARL."""
    return {"lr": cfg.lr, "epochs": cfg.epochs, "minibatches": cfg.minibatches, "gamma": cfg.gamma,
            "lmbda": cfg.gae_lambda, "clip": cfg.clip, "entropy": cfg.entropy_coef, "grad_norm": cfg.max_grad_norm}


def run_marlpg(frames: int, seed: int, eval_every: int = 0) -> dict:
    from marlpg.algos.mappo import train

    cfg = marlpg_config(frames, seed, eval_every)
    # A row's "seconds" is stamped before that row's evaluation (when eval_every asks for one), so
    # the time from the stamp to this callback is the evaluation: it is taken out of later rows.
    stamps = {"began": None, "eval_seconds": 0.0}
    curve: list[dict] = []
    evals: list[tuple[int, float]] = []

    def on_iteration(row: dict) -> None:
        now = time.perf_counter()
        if stamps["began"] is None:
            stamps["began"] = now - row["seconds"]  # the first row has no evaluation (eval_every != 1)
        curve.append({"frames": row["frames"], "seconds": row["seconds"] - stamps["eval_seconds"],
                      "return": row["return"]})
        if "eval_return" in row:
            evals.append((row["frames"], row["eval_return"]))
            stamps["eval_seconds"] += now - stamps["began"] - row["seconds"]

    result = train(cfg, progress=False, on_iteration=on_iteration)
    evals.append((result.frames, result.eval_return))
    return {"curve": curve, "evals": evals, "frames": result.frames,
            "seconds": result.seconds - stamps["eval_seconds"], "eval_return": result.eval_return, "capped": False}


# --------------------------------------------------------------------------------------- BenchMARL
def import_benchmarl() -> None:
    if _BENCHMARL_ERROR is not None:
        raise SystemExit(
            f"BenchMARL is not importable ({_BENCHMARL_ERROR}). With the CPU build of torch 2.13 install it as\n"
            '  pip install "torchrl==0.11.1" "tensordict==0.11.0" && pip install --no-deps "benchmarl==1.5.2"\n'
            "(--no-deps: its torchvision requirement would otherwise replace torch; BenchMARL never imports it)"
        )


class _CapReached(Exception):
    """Raised from a callback to end a BenchMARL run at its wall-time cap."""


class _Clock:
    """Training seconds of a BenchMARL run: wall time since the start, less the time spent evaluating."""

    def __init__(self):
        self.start = time.perf_counter()
        self.eval_seconds = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds


class _Recorder(_Callback):
    """Keeps a BenchMARL run's curve in memory, in marlpg's units, and ends the run at the cap.

    (At module level because BenchMARL pickles its callbacks into the experiment folder.)
    """

    def __init__(self, clock: _Clock, cap_seconds: float | None):
        super().__init__()
        self.clock, self.cap_seconds = clock, cap_seconds
        self.curve: list[dict] = []
        self.evals: list[tuple[int, float]] = []
        self._return = float("nan")

    def on_batch_collected(self, batch):
        # ("next", "agents", "episode_reward") is BenchMARL's RewardSum: each agent's reward summed
        # over the episode so far, shape [envs, steps, agents, 1]. At the steps where an episode
        # ends, its mean over agents is the episode return per agent, the quantity marlpg's curve
        # holds. (simple_spread's reward is shared: every agent receives the team reward, so the
        # per-agent return is the team's, not the sum over the 3 agents.)
        done = batch.get(("next", "done")).squeeze(-1)
        per_agent = batch.get(("next", "agents", "episode_reward")).squeeze(-1)
        self._return = per_agent[done].mean().item() if bool(done.any()) else float("nan")

    def on_train_end(self, training_td, group):
        exp = self.experiment
        seconds = self.clock.elapsed()
        self.curve.append({"frames": exp.total_frames, "seconds": seconds, "return": self._return})
        last = exp.n_iters_performed + 1 >= exp.config.get_max_n_iters(exp.on_policy)
        if self.cap_seconds is not None and not last and seconds >= self.cap_seconds:
            exp._evaluation_loop()  # the run ends here, before BenchMARL's own final evaluation
            raise _CapReached

    def on_evaluation_end(self, rollouts):
        # One rollout per evaluation episode, ("next", "agents", "reward") of shape [steps, agents, 1]:
        # the sum over steps, averaged over agents, is the episode return per agent (BenchMARL's own
        # eval/agents/reward/episode_reward_mean is this same per-agent mean).
        returns = torch.stack([td.get(("next", "agents", "reward")).sum(0).mean() for td in rollouts])
        self.evals.append((self.experiment.total_frames, returns.mean().item()))


def benchmarl_configs(frames: int, save_folder: str, ppo: dict | None):
    """(task, algorithm, actor model, critic model, experiment config) of BenchMARL's MAPPO:
    matched to marlpg's when ``ppo`` holds marlpg's settings, BenchMARL's defaults when it is None."""
    from dataclasses import replace

    from benchmarl.algorithms import MappoConfig
    from benchmarl.environments import VmasTask
    from benchmarl.experiment import ExperimentConfig
    from benchmarl.models.mlp import MlpConfig

    task = VmasTask.SIMPLE_SPREAD.get_from_yaml()
    algorithm = MappoConfig.get_from_yaml()
    actor = MlpConfig.get_from_yaml()
    critic = MlpConfig.get_from_yaml()
    config = ExperimentConfig.get_from_yaml()
    # Off in both setups: loggers, rendering, checkpoints. The JSON writer stays on because
    # BenchMARL evaluates only while a logger or the JSON writer is active; it writes, with its
    # config.pkl, into a temporary folder.
    config.loggers = []
    config.create_json = True
    config.render = False
    config.checkpoint_interval = 0
    config.checkpoint_at_end = False
    config.save_folder = save_folder
    config.sampling_device = config.train_device = config.buffer_device = "cpu"
    config.max_n_iters = None
    config.max_n_frames = frames
    config.evaluation_interval = frames  # BenchMARL evaluates after its first iteration and then here
    if ppo is None:  # BenchMARL's defaults as shipped
        return task, algorithm, actor, critic, config

    task.config.update(max_steps=HORIZON, n_agents=N_AGENTS)
    algorithm = replace(algorithm, share_param_critic=True, clip_epsilon=ppo["clip"], entropy_coef=ppo["entropy"],
                        lmbda=ppo["lmbda"], loss_critic_type="l2", critic_coef=1.0)
    actor = replace(actor, num_cells=list(ACTOR_HIDDEN), activation_class=torch.nn.Tanh)
    critic = replace(critic, num_cells=list(CRITIC_HIDDEN), activation_class=torch.nn.Tanh)
    config.prefer_continuous_actions = False  # simple_spread's 9 discrete actions, as marlpg's
    config.share_policy_params = True
    config.gamma = ppo["gamma"]
    config.lr = ppo["lr"]
    config.adam_eps = ADAM_EPS
    config.clip_grad_norm = True
    config.clip_grad_val = ppo["grad_norm"]  # per optimizer (actor, critic), as marlpg clips each network
    config.on_policy_collected_frames_per_batch = FRAMES_PER_BATCH
    config.on_policy_n_envs_per_worker = NUM_ENVS
    # BenchMARL makes n_minibatch_iters passes over a batch, each in minibatches of minibatch_size frames.
    config.on_policy_n_minibatch_iters = ppo["epochs"]
    config.on_policy_minibatch_size = FRAMES_PER_BATCH // ppo["minibatches"]
    config.evaluation = True
    config.evaluation_episodes = EVAL_EPISODES
    config.evaluation_deterministic_actions = True
    return task, algorithm, actor, critic, config


def run_benchmarl(frames: int, seed: int, cap_seconds: float | None, ppo: dict | None) -> dict:
    from benchmarl.experiment import Experiment

    with tempfile.TemporaryDirectory(prefix="bench_mappo_") as folder:
        task, algorithm, actor, critic, config = benchmarl_configs(frames, folder, ppo)
        recorder = _Recorder(_Clock(), cap_seconds)
        experiment = Experiment(task=task, algorithm_config=algorithm, model_config=actor,
                                critic_model_config=critic, seed=seed, config=config, callbacks=[recorder])
        clock = recorder.clock
        evaluation_loop = experiment._evaluation_loop

        def timed_evaluation():
            began = time.perf_counter()
            evaluation_loop()
            clock.eval_seconds += time.perf_counter() - began

        experiment._evaluation_loop = timed_evaluation  # keeps evaluations out of the training seconds
        captured = io.StringIO()
        clock.start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(captured):  # BenchMARL prints a farewell when a run is ended
                experiment.run()
            capped = False
        except _CapReached:
            capped = True
        except BaseException:
            print(captured.getvalue(), end="")
            raise
    last = recorder.curve[-1]
    return {"curve": recorder.curve, "evals": recorder.evals, "frames": last["frames"], "seconds": last["seconds"],
            "eval_return": recorder.evals[-1][1], "capped": capped}


# -------------------------------------------------------------------------------------------- main
def speedup(ratio: float) -> str:
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two iterations each, one thread: checks the script runs")
    parser.add_argument("--frames", type=int, default=6_400_000,
                        help="frame budget of each learner, rounded up to whole batches of 6,400 (default 6,400,000: "
                             "1,000 iterations, enough for marlpg to close 85%% of the gap)")
    parser.add_argument("--benchmarl-seconds", type=float, default=600.0,
                        help="cap on BenchMARL's training seconds (default 600; 0: no cap)")
    parser.add_argument("--default-config-iters", type=int, default=2,
                        help="iterations of BenchMARL's default MAPPO config to time, 6,000 frames each (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice). On a busy machine, 1 thread avoids "
                             "OpenMP stalls that make tiny tensor ops take milliseconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.benchmarl_seconds, args.default_config_iters = 2 * FRAMES_PER_BATCH, 0, 0
        args.threads = args.threads or 1  # immune to a busy machine's OpenMP stalls; timings mean nothing here
    if args.threads:
        torch.set_num_threads(args.threads)
    frames = -(-args.frames // FRAMES_PER_BATCH) * FRAMES_PER_BATCH
    cap = args.benchmarl_seconds or None

    import_benchmarl()
    import benchmarl
    import tensordict
    import torchrl
    import vmas

    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch threads: "
          f"{torch.get_num_threads()}, load average {load:.1f}; torch {torch.__version__}, benchmarl "
          f"{benchmarl.__version__}, torchrl {torchrl.__version__}, tensordict {tensordict.__version__}, "
          f"vmas {vmas.__version__}")
    if load > 0.5 * cores:
        print(f"note: other processes keep this machine busy (load {load:.1f} on {cores} cores): timings vary "
              "with them, and with more than one torch thread tiny ops can stall (try --threads 1)")
    ppo = ppo_settings(marlpg_config(frames, args.seed))
    print(f"task: VMAS simple_spread, {N_AGENTS} agents, discrete actions, {HORIZON}-step episodes; {NUM_ENVS} envs "
          f"x {HORIZON} steps = {FRAMES_PER_BATCH:,} frames a batch; actor {'-'.join(map(str, ACTOR_HIDDEN))}, critic {'-'.join(map(str, CRITIC_HIDDEN))} "
          "(centralized), both shared")
    print(f"update (marlpg's defaults, given to BenchMARL too): {ppo['epochs']} epochs x {ppo['minibatches']} "
          f"minibatches of {FRAMES_PER_BATCH // ppo['minibatches']:,} frames, Adam lr {ppo['lr']:g} eps {ADAM_EPS:g}, "
          f"gamma {ppo['gamma']}, GAE lambda {ppo['lmbda']}, clip {ppo['clip']}, entropy {ppo['entropy']}, "
          f"gradient norm <= {ppo['grad_norm']}")
    reference, source = reference_returns()
    print(f"references ({source}): random {reference[0]:.2f}, scripted {reference[1]:.2f} "
          "(mean episode return per agent)")
    print(f"budget: {frames:,} frames each" + (f"; BenchMARL capped at {cap:.0f} training seconds" if cap else ""))

    # BenchMARL first: where it stops early, marlpg is also evaluated at the frames BenchMARL reached.
    bm = run_benchmarl(frames, args.seed, cap, ppo)
    stop_iters = bm["frames"] // FRAMES_PER_BATCH
    mp = run_marlpg(frames, args.seed, eval_every=stop_iters if bm["capped"] and stop_iters >= 2 else 0)
    results = {"BenchMARL": bm, "marlpg": mp}

    print(f"\n{'MAPPO':<12}{'frames':>12}{'seconds':>10}{'frames/s':>10}{'train return':>14}{'eval return':>13}"
          f"{'eval gap':>10}")
    for name, res in results.items():
        res["fps"] = res["frames"] / res["seconds"]
        print(f"  {name:<10}{res['frames']:>12,}{res['seconds']:>10.1f}{res['fps']:>10.0f}"
              f"{res['curve'][-1]['return']:>14.2f}{res['eval_return']:>13.2f}{gap(res['eval_return'], reference):>10.2f}")
    if bm["capped"]:
        print(f"  (BenchMARL reached its {cap:.0f} s cap at {bm['frames']:,} frames)")

    print("\ntraining seconds (and frames) until the training return first closes a fraction of the "
          "random-to-scripted gap:")
    hits = {}
    for fraction in THRESHOLDS:
        target = reference[0] + fraction * (reference[1] - reference[0])
        hits[fraction] = {name: first_reaching(res["curve"], fraction, reference) for name, res in results.items()}
        cells = [f"{name} " + (f"{row['seconds']:.1f} s ({row['frames'] / 1e6:.2f} M)" if row else "not reached")
                 for name, row in hits[fraction].items()]
        print(f"  {fraction:>4.0%} (return {target:7.2f}):  " + ";  ".join(cells))

    common = min(bm["frames"], mp["frames"])
    mp_row, bm_row = row_at(mp["curve"], common), row_at(bm["curve"], common)
    mp_eval, bm_eval = dict(mp["evals"]).get(common), dict(bm["evals"]).get(common)
    print(f"\nat equal frames ({common:,}):")
    print(f"  train return  marlpg {mp_row['return']:.2f}, BenchMARL {bm_row['return']:.2f} "
          f"(gap {gap(mp_row['return'], reference):.2f} vs {gap(bm_row['return'], reference):.2f})")
    if mp_eval is not None and bm_eval is not None:
        print(f"  eval return   marlpg {mp_eval:.2f}, BenchMARL {bm_eval:.2f} "
              f"(gap {gap(mp_eval, reference):.2f} vs {gap(bm_eval, reference):.2f})")
    print(f"  seconds       marlpg {mp_row['seconds']:.1f}, BenchMARL {bm_row['seconds']:.1f}")

    print("\nratios (marlpg / BenchMARL):")
    fps_ratio = mp["fps"] / bm["fps"]
    print(f"  frames per second              {fps_ratio:7.2f}   {speedup(fps_ratio)}")
    if mp_eval is not None and bm_eval is not None:
        print(f"  eval return at equal frames    {mp_eval / bm_eval:7.2f}   (negative returns: below 1 is better)")
        if gap(bm_eval, reference) > 0.05:
            print(f"  eval gap closed, equal frames  {gap(mp_eval, reference) / gap(bm_eval, reference):7.2f}   "
                  "(above 1 is better)")
    for fraction in THRESHOLDS:
        mp_hit, bm_hit = hits[fraction]["marlpg"], hits[fraction]["BenchMARL"]
        label = f"time to {fraction:.0%} of the gap"
        if mp_hit and bm_hit:
            ratio = mp_hit["seconds"] / bm_hit["seconds"]
            print(f"  {label:<30} {ratio:7.2f}   {speedup(1 / ratio)}")
        else:
            missing = " and ".join(name for name, row in (("marlpg", mp_hit), ("BenchMARL", bm_hit)) if row is None)
            print(f"  {label:<30}     n/a   (not reached by {missing} within the budget)")

    if args.default_config_iters > 0:
        default = run_benchmarl(args.default_config_iters * 6000, args.seed, None, ppo=None)
        default_fps = default["frames"] / default["seconds"]
        print(f"\nBenchMARL's default MAPPO config (its own choices: continuous actions, 100-step episodes, "
              f"10 envs, 6,000 frames a batch, 256-256 MLPs, 45 passes x 15 minibatches of 400): "
              f"{default['frames']:,} frames in {default['seconds']:.1f} s = {default_fps:.0f} frames/s; "
              f"marlpg above ran {mp['fps'] / default_fps:.1f}x as many frames/s, BenchMARL's comparable "
              f"config {bm['fps'] / default_fps:.1f}x")


if __name__ == "__main__":
    main()
