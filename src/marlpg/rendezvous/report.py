"""Text tables: Output 30.7.1 in the seed's layout, and the sweep grid."""
from __future__ import annotations

import numpy as np

from .sweep import Cell


def output_30_7_1(central, independent, n_agents: int, seeds: int) -> str:
    """The seed's table from (final_reward[S], grad_variance[S]) of its two branches.

    ``central`` is the seed's "central critic", which this course calls the state-value critic.
    """
    (cc_final, cc_var), (ic_final, ic_var) = central, independent
    lines = [
        f"cooperative rendezvous, n_agents = {n_agents} , seeds = {seeds}",
        "",
        "                          central critic   independent critic",
        "policy-gradient variance : %14.4f %18.4f" % (cc_var.mean(), ic_var.mean()),
        "final team reward mean   : %14.4f %18.4f" % (cc_final.mean(), ic_final.mean()),
        "final team reward std    : %14.4f %18.4f" % (cc_final.std(), ic_final.std()),
        "",
        "gradient-variance ratio (independent / central) : %.2f x" % (ic_var.mean() / cc_var.mean()),
        "outcome-variance  ratio (independent / central) : %.2f x" % (ic_final.std() ** 2 / cc_final.std() ** 2),
    ]
    return "\n".join(lines)


def joint_action_note(joint, independent) -> str:
    (_, ja_var), (_, ic_var) = joint, independent
    return "\n".join(
        [
            "note: the seed's 'central critic' is the state-value critic: a batch-mean baseline that sees",
            "      the policies but no agent's action. A critic that sees the joint action and gives each",
            "      agent a counterfactual baseline (joint-action critic) measures:",
            "policy-gradient variance (joint-action) : %.4f" % ja_var.mean(),
            "gradient-variance ratio (independent / joint-action) : %.2f x" % (ic_var.mean() / ja_var.mean()),
        ]
    )


def _cell(value, width: int, spec: str, suffix: str = "") -> str:
    if value is None or not np.isfinite(value):
        return f"{'diverged':>{width}}"
    return f"{format(value, spec) + suffix:>{width}}"


RATIOS = [("independent", "state-value"), ("independent", "joint-action"), ("state-value", "joint-action")]


def sweep_table(rows: list[Cell], critics) -> str:
    """One line per (n, coupling): the step, each critic's gradient variance, and the variance ratios."""
    ratios = [(a, b) for a, b in RATIOS if a in critics and b in critics]
    head = f"{'n':>3} {'coupling':>8} {'step':>9} " + " ".join(f"{c:>13}" for c in critics)
    head += "".join(f" {a[:5] + '/' + b[:5]:>12}" for a, b in ratios)
    lines = ["gradient variance by critic (mean over seeds) and variance ratios", head]
    for row in rows:
        line = f"{row.n_agents:>3} {row.coupling:>8g} {row.step:>9.3g} "
        line += " ".join(_cell(row.variance[c], 13, ".4f") for c in critics)
        line += "".join(" " + _cell(row.ratio(a, b), 12, ".2f", "x") for a, b in ratios)
        lines.append(line)
    return "\n".join(lines)
