"""Interactive explorer of the rendezvous experiment for the notebooks.

``rendezvous_explorer()`` returns an ipywidgets box with sliders for the number of
agents, the coupling, the step (``'auto'`` or a value) and the policy's sigma, and a plot
that is redrawn whenever a control changes: each critic's gradient variance over
training, and the mean variance of each critic with the ratios between them. One
redraw is one ``simulate`` call (a fraction of a second on two CPU cores).

When the chosen step makes some run diverge, the plot is replaced by the library's
``DivergenceError`` message, which names the cells, the step and the safe alternative.

``explorer_figure`` is the same drawing without widgets: it returns a matplotlib
figure, or raises ``DivergenceError``, so it can be used and tested on its own.
"""
from __future__ import annotations

import html
from functools import lru_cache

import matplotlib.pyplot as plt

from .figures import COLUMN_WIDTH, CRITIC_COLORS, plot_variance_traces
from marlpg.rendezvous import CRITICS, DivergenceError, NoiseBank, require_stable, simulate, stable_step

MAX_AGENTS = 32
MAX_COUPLING = 8.0


@lru_cache(maxsize=8)
def _noise_bank(n_agents: int, batch: int, steps: int, seeds: int) -> NoiseBank:
    # The random streams do not depend on coupling, step or sigma: moving those sliders reuses them.
    return NoiseBank(n_agents, batch, steps, seeds)


def run_explorer(n_agents: int, coupling: float, step="auto", sigma: float = 0.25, *, seeds: int = 30,
                 steps: int = 400, batch: int = 32):
    """One ``simulate`` call with all three critics and a variance trace; raises ``DivergenceError``."""
    bank = _noise_bank(int(n_agents), int(batch), int(steps), int(seeds))
    simulation = simulate(int(n_agents), [float(coupling)], CRITICS, sigma=float(sigma), step=step, trace=True,
                          noise_bank=bank)
    return require_stable(simulation)


def explorer_figure(n_agents: int = 4, coupling: float = 1.0, step="auto", sigma: float = 0.25, **options):
    """Draw one setting: variance over training (top), mean variance per critic (below), at the column's width."""
    simulation = run_explorer(n_agents, coupling, step, sigma, **options)
    fig, (left, right) = plt.subplots(2, 1, figsize=(COLUMN_WIDTH, 7.2), gridspec_kw={"height_ratios": [1.4, 1]})
    plot_variance_traces(simulation, ax=left, title="gradient variance during training")
    means = [float(simulation.mean_variance(name)[0]) for name in CRITICS]
    bars = right.bar(range(len(CRITICS)), means, color=[CRITIC_COLORS[name] for name in CRITICS])
    right.set_xticks(range(len(CRITICS)), list(CRITICS))
    right.set_yscale("log")
    right.set_ylabel("mean gradient variance")
    for bar, value in zip(bars, means):
        right.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3g}", ha="center", va="bottom", fontsize=9)
    ratio_sv = means[0] / means[1]
    ratio_ja = means[0] / means[2]
    right.set_title(f"independent / state-value = {ratio_sv:.2f}x\nindependent / joint-action = {ratio_ja:.2f}x",
                    fontsize=10)
    right.set_ylim(min(means) / 2, max(means) * 3)
    step_used = float(simulation.steps_used[0])
    fig.suptitle(f"n = {n_agents}, coupling = {coupling:g}, sigma = {sigma:g}, "
                 f"step = {step_used:.3g}{' (auto)' if step == 'auto' else ''}", fontsize=11)
    fig.tight_layout()
    return fig


def divergence_message(error: Exception) -> str:
    """HTML for a diverged setting: the library's message, in a box that reads as a warning, not a plot."""
    text = html.escape(str(error))
    return (
        '<div style="border:2px solid #b03a2e;background:#fdecea;padding:0.6em 0.9em;border-radius:6px;'
        'max-width:52em">'
        "<b>No plot: this step makes gradient ascent diverge.</b>"
        f'<pre style="white-space:pre-wrap;margin:0.5em 0 0 0;background:none">{text}</pre>'
        "</div>"
    )


def rendezvous_explorer(n_agents: int = 4, coupling: float = 1.0, step="auto", sigma: float = 0.25, *,
                        seeds: int = 30, steps: int = 400, batch: int = 32):
    """Sliders for n (1..32), coupling (0..8), step ('auto' or a value) and sigma, and a live plot."""
    import ipywidgets as w
    from IPython.display import HTML, display

    style = {"description_width": "9em"}
    # At most 30em, never wider than the column it is in: a fixed 30em in a two-column row on a narrow page
    # ran each slider under its neighbour and hid its value (the readout at its right end).
    layout = w.Layout(width="30em", max_width="100%")
    agents = w.IntSlider(value=n_agents, min=1, max=MAX_AGENTS, step=1, description="agents n",
                         continuous_update=False, style=style, layout=layout)
    coupling_slider = w.FloatSlider(value=coupling, min=0.0, max=MAX_COUPLING, step=0.25, description="coupling c",
                                    continuous_update=False, style=style, layout=layout)
    sigma_slider = w.FloatSlider(value=sigma, min=0.05, max=1.0, step=0.05, description="sigma",
                                 continuous_update=False, style=style, layout=layout)
    rule = w.ToggleButtons(options=["auto", "fixed"], value="auto" if step == "auto" else "fixed",
                           description="step rule", style=style,
                           tooltips=["0.4 / (n (1 + max(c, 0.25) n)) * min(1, batch / 32): the course's rule", "one step for every setting"])
    fixed = w.FloatLogSlider(value=0.02 if step == "auto" else float(step), base=10, min=-4, max=0, step=0.05,
                             description="fixed step", readout_format=".2g", continuous_update=False,
                             disabled=step == "auto", style=style, layout=layout)
    status = w.HTML()
    out = w.Output()

    def current_step():
        return "auto" if rule.value == "auto" else float(fixed.value)

    def redraw(*_):
        fixed.disabled = rule.value == "auto"
        n, c = agents.value, coupling_slider.value
        auto = stable_step(n, c, batch)
        chosen = (f"auto step 0.4 / (n (1 + max(c, 0.25) n)) = {auto:.3g}" if rule.value == "auto"
                  else f"fixed step {fixed.value:.3g} (the auto rule would give {auto:.3g})")
        status.value = (f"<small>n = {n}, c = {c:g}: {chosen}; "
                        f"{seeds} seeds x {steps} updates x {batch} rollouts per update</small>")
        with out:
            out.clear_output(wait=True)
            try:
                fig = explorer_figure(n, c, current_step(), sigma_slider.value, seeds=seeds, steps=steps,
                                      batch=batch)
            except DivergenceError as error:
                display(HTML(divergence_message(error)))
                return
            display(fig)
            plt.close(fig)

    for control in (agents, coupling_slider, sigma_slider, rule, fixed):
        control.observe(redraw, names="value")
    redraw()
    controls = w.VBox([w.HBox([w.VBox([agents, coupling_slider]), w.VBox([sigma_slider, fixed])]), rule, status])
    box = w.VBox([controls, out])
    box.controls = {"agents": agents, "coupling": coupling_slider, "sigma": sigma_slider, "rule": rule,
                    "fixed": fixed}
    box.output = out
    return box


__all__ = ["divergence_message", "explorer_figure", "rendezvous_explorer", "run_explorer", "MAX_AGENTS",
           "MAX_COUPLING"]
