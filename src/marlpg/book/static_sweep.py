"""The rendezvous experiment for a reader without a kernel: precomputed, drawn in the browser.

The live explorer (``marlpg.book.widgets``) reruns the experiment on every slider move, which needs
Python. The HTML book has no Python behind it, so this module runs the experiment once per cell
of a grid of team sizes and couplings when the book is built, and emits a self-contained HTML
fragment: two range sliders, an SVG drawing and about a hundred lines of plain JavaScript that
redraw from the embedded numbers. No library, no network: it works from a file on disk.

For every cell (n, c) of the grid, with the course's step rule and all three critics:

* the gradient-noise scale during training (mean over seeds), thinned to ``trace_points`` updates;
* each critic's mean gradient variance over training and seeds, and the ratios
  independent / state-value and independent / joint-action;
* the mean team reward at the final policy means.

``precompute_sweep`` returns the numbers (a ``StaticSweep``), ``sweep_html`` draws them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from .figures import CRITIC_COLORS, CRITIC_LABELS
from marlpg.rendezvous import CRITICS, NoiseBank, require_stable, simulate

SWEEP_AGENTS = tuple(range(1, 17))
SWEEP_COUPLINGS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


@dataclass(frozen=True)
class StaticSweep:
    """The grid's results; arrays indexed [agents, coupling, critic, ...]."""

    agents: tuple
    couplings: tuple
    critics: tuple
    updates: np.ndarray  # [P] update numbers (1-based) at which the traces are sampled
    traces: np.ndarray  # [N, C, K, P] gradient-noise scale, mean over seeds
    mean_variance: np.ndarray  # [N, C, K] mean over updates and seeds
    final_reward: np.ndarray  # [N, C, K] team reward at the final means, mean over seeds
    steps_used: np.ndarray  # [N, C] the step each cell trained with
    seeds: int
    steps: int
    batch: int

    def ratio(self, numerator: str, denominator: str) -> np.ndarray:
        """[N, C] ratio of two critics' mean gradient variance."""
        k_num, k_den = self.critics.index(numerator), self.critics.index(denominator)
        return self.mean_variance[..., k_num] / self.mean_variance[..., k_den]

    def cell(self, n_agents: int, coupling: float) -> dict:
        """One cell's summary, the same numbers the browser shows for it."""
        i, j = self.agents.index(n_agents), self.couplings.index(coupling)
        return {
            "mean_variance": dict(zip(self.critics, self.mean_variance[i, j].tolist())),
            "ratio_sv": float(self.ratio("independent", "state-value")[i, j]),
            "ratio_ja": float(self.ratio("independent", "joint-action")[i, j]),
            "step": float(self.steps_used[i, j]),
        }


def _check_grid(agents, couplings) -> None:
    if not agents or any(int(n) != n or n < 1 for n in agents):
        raise ValueError(f"agents must be a non-empty list of integers >= 1, got {agents!r}")
    if not couplings or any(not np.isfinite(c) or c < 0 for c in couplings):
        raise ValueError(f"couplings must be a non-empty list of finite numbers >= 0, got {couplings!r}")
    if list(agents) != sorted(set(agents)) or list(couplings) != sorted(set(couplings)):
        raise ValueError("agents and couplings must each be strictly increasing")


def precompute_sweep(agents=SWEEP_AGENTS, couplings=SWEEP_COUPLINGS, *, seeds: int = 30, steps: int = 400,
                     batch: int = 32, trace_points: int = 50) -> StaticSweep:
    """Run every (n, c) cell with all three critics and the course's step rule."""
    agents, couplings = tuple(int(n) for n in agents), tuple(float(c) for c in couplings)
    _check_grid(agents, couplings)
    if not 2 <= trace_points <= steps:
        raise ValueError(f"trace_points must lie in [2, steps={steps}], got {trace_points}")
    bank = NoiseBank(max(agents), batch, steps, seeds)
    picks = np.unique(np.round(np.geomspace(1, steps, trace_points)).astype(int)) - 1
    traces, means, finals, step_rows = [], [], [], []
    for n in agents:
        run = require_stable(simulate(n, couplings, CRITICS, step="auto", trace=True, noise_bank=bank))
        traces.append(np.moveaxis(run.variance_trace[:, :, picks], 0, 1))  # [C, K, P]
        means.append(run.grad_variance.mean(-1).T)  # [C, K]
        finals.append(run.final_reward.mean(-1).T)
        step_rows.append(run.steps_used)
    return StaticSweep(agents, couplings, CRITICS, picks + 1, np.stack(traces), np.stack(means), np.stack(finals),
                       np.stack(step_rows), seeds, steps, batch)


def _significant(values: np.ndarray, digits: int = 4) -> list:
    """Nested lists of floats rounded to ``digits`` significant figures (a compact JSON payload)."""
    return json.loads(np.array2string(np.asarray(values), precision=digits - 1, floatmode="maxprec",
                                      separator=",", threshold=np.inf, max_line_width=np.inf,
                                      formatter={"float_kind": lambda x: f"{x:.{digits}g}"}))


def sweep_payload(sweep: StaticSweep) -> dict:
    """The numbers the browser needs, as plain JSON types."""
    return {
        "agents": list(sweep.agents),
        "couplings": list(sweep.couplings),
        "critics": list(sweep.critics),
        "labels": [CRITIC_LABELS[name] for name in sweep.critics],
        "colors": [CRITIC_COLORS[name] for name in sweep.critics],
        "updates": sweep.updates.tolist(),
        "traces": _significant(sweep.traces),
        "mean": _significant(sweep.mean_variance),
        "final": _significant(sweep.final_reward),
        "step": _significant(sweep.steps_used, 3),
        "protocol": {"seeds": sweep.seeds, "steps": sweep.steps, "batch": sweep.batch},
    }


_SCRIPT = r"""
(function () {
  var root = document.getElementById("%(id)s");
  var data = JSON.parse(root.querySelector("script.marlpg-sweep-data").textContent);
  var agentsInput = root.querySelector("input.marlpg-sweep-agents");
  var couplingInput = root.querySelector("input.marlpg-sweep-coupling");
  var svg = root.querySelector("svg.marlpg-sweep-plot");
  var readout = root.querySelector(".marlpg-sweep-readout");
  var NS = "http://www.w3.org/2000/svg";
  // Drawn in a 700 x 310 box, about the book's column width, so that 12-unit text reads at about 12 px.
  var left = {x: 66, y: 22, w: 350, h: 230}, right = {x: 502, y: 22, w: 180, h: 230};

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  }
  function fmt(x) {
    if (x >= 1000) return Math.round(x).toLocaleString("en-US");
    return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  }
  // Ticks of a log axis: the powers of ten in [lo, hi], with 2 and 5 times them when fewer than two fit.
  function logTicks(lo, hi) {
    var ticks = [], multiples = [1];
    for (var pass = 0; pass < 2 && ticks.length < 2; pass++) {
      ticks = [];
      for (var e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
        multiples.forEach(function (m) {
          var v = m * Math.pow(10, e);
          if (v >= lo && v <= hi) ticks.push(v);
        });
      }
      multiples = [1, 2, 5];
    }
    return ticks;
  }
  // A log tick's label: plain digits from 0.01 to 1,000, a power of ten (10 with a raised exponent) beyond.
  function logLabel(v, x, y) {
    var e = Math.floor(Math.log10(v) + 1e-9), m = Math.round(v / Math.pow(10, e));
    var node = el("text", {x: x, y: y, "text-anchor": "end", "font-size": 12, "class": "marlpg-sweep-ytick"});
    if (e >= -2 && e <= 3) { node.textContent = Number(v.toPrecision(3)).toLocaleString("en-US"); return node; }
    node.textContent = (m === 1 ? "" : m + "\u00d7") + "10";
    var sup = document.createElementNS(NS, "tspan");
    sup.setAttribute("dy", "-5");
    sup.setAttribute("font-size", 10);
    sup.textContent = String(e);
    node.appendChild(sup);
    return node;
  }
  // Ticks of a linear axis from 0 to hi: at least three steps of 1, 2 or 5 times a power of ten.
  function linearTicks(hi) {
    var raw = hi / 3, power = Math.pow(10, Math.floor(Math.log10(raw))), step = power;
    [2, 5].forEach(function (m) { if (m * power <= raw) step = m * power; });
    var ticks = [];
    for (var v = 0; v <= hi + 1e-9; v += step) ticks.push(Number(v.toPrecision(6)));
    return ticks;
  }
  function axes(box, xlabel, ylabel, title) {
    el("rect", {x: box.x, y: box.y, width: box.w, height: box.h, fill: "none", stroke: "#888"});
    el("text", {x: box.x + box.w / 2, y: box.y + box.h + 36, "text-anchor": "middle", "font-size": 13}, xlabel);
    el("text", {x: box.x + box.w / 2, y: box.y - 7, "text-anchor": "middle", "font-size": 13}, title);
    el("text", {x: box.x - 50, y: box.y + box.h / 2, "font-size": 13, "text-anchor": "middle",
                transform: "rotate(-90 " + (box.x - 50) + " " + (box.y + box.h / 2) + ")"}, ylabel);
  }

  function draw() {
    var i = Number(agentsInput.value), j = Number(couplingInput.value);
    var n = data.agents[i], c = data.couplings[j];
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    // Left: each critic's gradient variance during training (log-log).
    var traces = data.traces[i][j], lo = Infinity, hi = 0;
    traces.forEach(function (t) { t.forEach(function (v) { lo = Math.min(lo, v); hi = Math.max(hi, v); }); });
    lo /= 1.5; hi *= 1.5;
    var T = data.protocol.steps;
    function px(u) { return left.x + left.w * Math.log(u) / Math.log(T); }
    function py(v) { return left.y + left.h * (1 - Math.log(v / lo) / Math.log(hi / lo)); }
    axes(left, "update", "gradient variance", "gradient variance in training (mean of " + data.protocol.seeds + " seeds)");
    logTicks(lo, hi).forEach(function (v) {
      el("line", {x1: left.x, x2: left.x + left.w, y1: py(v), y2: py(v), stroke: "#ddd"});
      logLabel(v, left.x - 4, py(v) + 4);
    });
    [1, 10, 100, 1000].filter(function (u) { return u < T; }).concat([T]).forEach(function (u) {
      el("text", {x: px(u), y: left.y + left.h + 16, "text-anchor": "middle", "font-size": 12}, String(u));
    });
    traces.forEach(function (t, k) {
      var d = t.map(function (v, p) { return (p ? "L" : "M") + px(data.updates[p]).toFixed(1) + " " + py(v).toFixed(1); });
      el("path", {d: d.join(" "), fill: "none", stroke: data.colors[k], "stroke-width": 1.8,
                  "class": "marlpg-sweep-trace", "data-critic": data.critics[k]});
      // Legend in the top right corner, where the variance has fallen by late training.
      var lx = left.x + left.w - 222;
      el("line", {x1: lx, x2: lx + 16, y1: left.y + 14 + 16 * k, y2: left.y + 14 + 16 * k,
                  stroke: data.colors[k], "stroke-width": 2});
      el("text", {x: lx + 20, y: left.y + 18 + 16 * k, "font-size": 12}, data.labels[k]);
    });
    // Right: independent / state-value against n at this coupling; the current n is marked.
    var ratios = data.agents.map(function (_, a) { return data.mean[a][j][0] / data.mean[a][j][1]; });
    var rmax = Math.max.apply(null, ratios) * 1.1, nmax = data.agents[data.agents.length - 1];
    function rx(m) { return right.x + right.w * (m - 1) / Math.max(nmax - 1, 1); }
    function ry(r) { return right.y + right.h * (1 - r / rmax); }
    axes(right, "agents n", "independent / state-value", "ratio at c = " + c);
    linearTicks(rmax).forEach(function (r) {
      el("line", {x1: right.x, x2: right.x + right.w, y1: ry(r), y2: ry(r), stroke: "#ddd"});
      el("text", {x: right.x - 4, y: ry(r) + 4, "text-anchor": "end", "font-size": 12,
                  "class": "marlpg-sweep-ratio-tick"}, String(r));
    });
    [1, Math.round(nmax / 2), nmax].forEach(function (m) {
      el("text", {x: rx(m), y: right.y + right.h + 16, "text-anchor": "middle", "font-size": 12}, String(m));
    });
    el("path", {d: ratios.map(function (r, a) { return (a ? "L" : "M") + rx(data.agents[a]).toFixed(1) + " " + ry(r).toFixed(1); }).join(" "),
                fill: "none", stroke: data.colors[1], "stroke-width": 1.8});
    el("circle", {cx: rx(n), cy: ry(ratios[i]), r: 5, fill: data.colors[0], "class": "marlpg-sweep-marker"});

    var mean = data.mean[i][j];
    var sv = mean[0] / mean[1], ja = mean[0] / mean[2];
    root.querySelector(".marlpg-sweep-agents-value").textContent = n;
    root.querySelector(".marlpg-sweep-coupling-value").textContent = c;
    readout.setAttribute("data-agents", n);
    readout.setAttribute("data-coupling", c);
    readout.setAttribute("data-ratio-sv", sv.toFixed(4));
    readout.setAttribute("data-ratio-ja", ja.toFixed(4));
    readout.textContent = "n = " + n + ", c = " + c + " (step " + data.step[i][j] + "): mean gradient variance " +
      data.critics.map(function (name, k) { return name + " " + fmt(mean[k]); }).join(", ") +
      ". independent / state-value = " + sv.toFixed(2) + "x, independent / joint-action = " + ja.toFixed(2) + "x.";
  }
  agentsInput.addEventListener("input", draw);
  couplingInput.addEventListener("input", draw);
  draw();
})();
"""


def sweep_html(sweep: StaticSweep, n_agents: int = 4, coupling: float = 1.0) -> str:
    """A self-contained HTML fragment: sliders over the grid and a plot redrawn in the browser."""
    if n_agents not in sweep.agents or coupling not in sweep.couplings:
        raise ValueError(f"the starting cell n={n_agents}, c={coupling} is not on the grid "
                         f"(agents {sweep.agents}, couplings {sweep.couplings})")
    payload = json.dumps(sweep_payload(sweep), separators=(",", ":"))
    element_id = "marlpg-sweep-" + hashlib.sha256(payload.encode()).hexdigest()[:10]
    # "</" cannot appear inside the JSON, so the data script cannot be closed early.
    payload = payload.replace("</", "<\\/")
    last_n, last_c = len(sweep.agents) - 1, len(sweep.couplings) - 1
    return f"""<div id="{element_id}" class="marlpg-sweep" style="font-family:sans-serif;max-width:700px">
<script type="application/json" class="marlpg-sweep-data">{payload}</script>
<div style="display:flex;gap:2em;flex-wrap:wrap;margin-bottom:0.4em">
<label>agents n = <b class="marlpg-sweep-agents-value">{n_agents}</b><br>
<input type="range" class="marlpg-sweep-agents" min="0" max="{last_n}" step="1"
 value="{sweep.agents.index(n_agents)}" aria-label="number of agents" style="width:16em"></label>
<label>coupling c = <b class="marlpg-sweep-coupling-value">{coupling:g}</b><br>
<input type="range" class="marlpg-sweep-coupling" min="0" max="{last_c}" step="1"
 value="{sweep.couplings.index(coupling)}" aria-label="coupling" style="width:16em"></label>
</div>
<svg class="marlpg-sweep-plot" viewBox="0 0 700 310" width="100%" role="img"
 aria-label="gradient variance of the three critics"></svg>
<p class="marlpg-sweep-readout" style="font-size:0.9em;margin-top:0.2em"></p>
<script>{_SCRIPT % {"id": element_id}}</script>
</div>"""


__all__ = ["StaticSweep", "SWEEP_AGENTS", "SWEEP_COUPLINGS", "precompute_sweep", "sweep_html", "sweep_payload"]
