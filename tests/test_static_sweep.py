"""The precomputed sweep that the HTML book draws without a kernel (marlpg.book.static_sweep)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from marlpg.rendezvous import CRITICS, simulate
from marlpg.book.static_sweep import precompute_sweep, sweep_html, sweep_payload


@pytest.fixture(scope="module")
def small():
    return precompute_sweep(agents=(2, 4), couplings=(0.25, 1.0), trace_points=20)


def test_seed_cell_is_output_30_7_1(small):
    cell = small.cell(4, 1.0)
    # Output 30.7.1 of the source text: 18.8079 (central) and 29.3406 (independent), ratio 1.56.
    assert round(cell["mean_variance"]["state-value"], 4) == 18.8079
    assert round(cell["mean_variance"]["independent"], 4) == 29.3406
    assert round(cell["ratio_sv"], 2) == 1.56
    assert cell["step"] == pytest.approx(0.02)


def test_every_cell_matches_a_direct_simulation(small):
    for i, n in enumerate(small.agents):
        run = simulate(n, small.couplings, CRITICS, step="auto", trace=True)
        np.testing.assert_allclose(small.mean_variance[i], run.grad_variance.mean(-1).T, rtol=1e-12)
        np.testing.assert_allclose(small.final_reward[i], run.final_reward.mean(-1).T, rtol=1e-12)
        picks = small.updates - 1
        np.testing.assert_allclose(small.traces[i], np.moveaxis(run.variance_trace[:, :, picks], 0, 1), rtol=1e-12)
    assert small.updates[0] == 1 and small.updates[-1] == 400
    assert np.all(np.diff(small.updates) > 0)


def test_payload_round_trips_to_four_significant_digits(small):
    payload = json.loads(json.dumps(sweep_payload(small)))
    assert payload["critics"] == list(CRITICS)
    np.testing.assert_allclose(np.array(payload["mean"]), small.mean_variance, rtol=5e-4)
    np.testing.assert_allclose(np.array(payload["traces"]), small.traces, rtol=5e-4)
    assert payload["protocol"] == {"seeds": 30, "steps": 400, "batch": 32}


def test_html_is_self_contained(small):
    fragment = sweep_html(small, n_agents=4, coupling=1.0)
    data = re.search(r'<script type="application/json" class="marlpg-sweep-data">(.*?)</script>', fragment, re.S)
    assert json.loads(data.group(1).replace("<\\/", "</"))["agents"] == [2, 4]
    assert "http" not in fragment.replace("http://www.w3.org/2000/svg", ""), "no address may be loaded"
    # The sliders start on the requested cell: agents index 1 (n=4), coupling index 1 (c=1).
    assert re.search(r'class="marlpg-sweep-agents" min="0" max="1" step="1"\s+value="1"', fragment)
    assert re.search(r'class="marlpg-sweep-coupling" min="0" max="1" step="1"\s+value="1"', fragment)
    ids = set(re.findall(r'id="(marlpg-sweep-[0-9a-f]+)"', fragment))
    assert len(ids) == 1 and f'getElementById("{ids.pop()}")' in fragment


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="agents must be"):
        precompute_sweep(agents=(0, 2), couplings=(1.0,))
    with pytest.raises(ValueError, match="couplings must be"):
        precompute_sweep(agents=(2,), couplings=(-1.0,))
    with pytest.raises(ValueError, match="strictly increasing"):
        precompute_sweep(agents=(4, 2), couplings=(1.0,))
    with pytest.raises(ValueError, match="trace_points"):
        precompute_sweep(agents=(2,), couplings=(1.0,), trace_points=1)


def test_start_cell_must_be_on_the_grid(small):
    with pytest.raises(ValueError, match="not on the grid"):
        sweep_html(small, n_agents=3, coupling=1.0)


def test_axis_ticks_cover_the_curves_and_read_as_numbers(tmp_path):
    """In Chromium: the ratio axis is ticked up to the curve's top, and large variances read as powers of ten."""
    import chromium  # tests/chromium.py

    sweep = precompute_sweep(agents=(1, 4, 16), couplings=(0.0, 8.0), seeds=4, steps=60, trace_points=10)
    page_file = tmp_path / "sweep.html"
    page_file.write_text("<html><body style='width:690px'>" + sweep_html(sweep, 4, 0.0) + "</body></html>")
    ratios = sweep.ratio("independent", "state-value")
    with chromium.launch() as browser:
        _, page, outside, errors = chromium.open_local_page(browser, page_file)
        for j in range(len(sweep.couplings)):
            page.evaluate(f"""() => {{ const c = document.querySelector('input.marlpg-sweep-coupling');
                c.value = {j}; c.dispatchEvent(new Event('input')); }}""")
            page.evaluate("""() => { const a = document.querySelector('input.marlpg-sweep-agents');
                a.value = a.max; a.dispatchEvent(new Event('input')); }""")
            ratio_ticks = [float(t) for t in page.locator(".marlpg-sweep-ratio-tick").all_text_contents()]
            assert len(ratio_ticks) >= 3 and ratio_ticks[0] == 0
            assert ratio_ticks[-1] >= ratios[:, j].max() / 2, (ratio_ticks, ratios[:, j])
            variance_ticks = page.locator(".marlpg-sweep-ytick").all_text_contents()
            assert variance_ticks and all(len(label) <= 5 for label in variance_ticks), variance_ticks
    assert errors == [] and outside == []
