"""The instructor's class summary after grading: one self-contained HTML page for all assignments.

Per assignment: how many submissions had each status, the pass rate of each test cell (the fraction of
students earning its points, instructor overrides applied), the hand-graded cells still to grade, a score
distribution (an inline SVG histogram and the same bins as a table), and who needs attention (any status
other than ok or misnamed, hand-graded cells without a mark, or a late submission), with why.

Everything a student could have influenced (names, ids, details) is HTML-escaped; the page has no script and
makes no outside request (the same Content-Security-Policy as the feedback pages).
"""
from __future__ import annotations

import statistics
from collections import Counter

from .feedback import duration, e, earned_in_full, num, page
from .rebuild import Assignment, nbgrader_meta, role
from .results import Result

BINS = 10
QUIET = {"ok", "misnamed"}


def test_order(results: list[Result], assignment: Assignment | None) -> list[tuple[str, float]]:
    """The assignment's test cells (grade id, points) in notebook order, then any other test the results hold."""
    order: list[tuple[str, float]] = []
    if assignment is not None:
        order = [(nbgrader_meta(c)["grade_id"], float(nbgrader_meta(c).get("points", 0) or 0))
                 for c in assignment.source.cells if role(c) == "test"]
    seen = {gid for gid, _ in order}
    for r in results:
        for t in r.tests:
            if t.grade_id not in seen:
                seen.add(t.grade_id)
                order.append((t.grade_id, t.points))
    return order


def fraction(r: Result) -> float:
    return r.total / r.max_score if r.max_score > 0 else 0.0


def histogram(results: list[Result]) -> str:
    """Totals as a fraction of the maximum, in BINS bins: an inline SVG and the same numbers as a table."""
    counts = [0] * BINS
    for r in results:
        counts[min(BINS - 1, max(0, int(fraction(r) * BINS)))] += 1
    top = max(counts) or 1
    width, height, bar = 40 * BINS + 40, 170, 40
    rects = []
    for i, c in enumerate(counts):
        h = round(120 * c / top)
        x = 30 + i * bar
        rects.append(f'<rect x="{x + 2}" y="{140 - h}" width="{bar - 4}" height="{h}"><title>{c}</title></rect>'
                     f'<text x="{x + bar / 2}" y="{135 - h}" text-anchor="middle">{c}</text>'
                     f'<text x="{x + bar / 2}" y="156" text-anchor="middle">{i * 100 // BINS}</text>')
    svg = (f'<svg class="histogram" role="img" aria-label="score distribution" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
           f'<line x1="30" y1="140" x2="{30 + bar * BINS}" y2="140" stroke="#333"/>{"".join(rects)}'
           f'<text x="{30 + bar * BINS / 2}" y="168" text-anchor="middle">total, % of the maximum</text></svg>')
    rows = "".join(f"<tr><td>{i * 100 // BINS}–{(i + 1) * 100 // BINS}%</td><td>{c}</td></tr>"
                   for i, c in enumerate(counts))
    table = f'<table class="bins"><thead><tr><th>total</th><th>students</th></tr></thead><tbody>{rows}</tbody></table>'
    return f'<div class="distribution">{svg}{table}</div>'


def who(r: Result) -> str:
    return r.name or r.student


def attention_reasons(r: Result) -> list[str]:
    reasons = []
    for status in r.statuses:
        if status not in QUIET and status != "late":
            reasons.append(status)
    if r.late_seconds > 0 or "late" in r.statuses or getattr(r, "late_marker", False):
        reasons.append(f"late by {duration(r.late_seconds)}" + (f" (penalty {num(r.late_penalty)})" if r.late_penalty else "")
                       if r.late_seconds > 0 else "late")
    if r.ungraded:
        reasons.append("to grade by hand: " + ", ".join(r.ungraded))
    return reasons


def assignment_section(name: str, results: list[Result], assignment: Assignment | None) -> str:
    n = len(results)
    parts = [f'<section class="assignment"><h2>{e(name)}</h2>']
    totals = [r.total for r in results]
    maximum = max((r.max_score for r in results), default=0.0)
    pending = sum(1 for r in results if r.ungraded)
    parts.append(f"<p>{n} submission{'s' if n != 1 else ''}; total mean {num(round(statistics.mean(totals), 2))}, "
                 f"median {num(round(statistics.median(totals), 2))} of {num(maximum)}"
                 + (f"; {pending} not final (hand grading pending)" if pending else "") + ".</p>")
    order = test_order(results, assignment)
    if not order:
        parts.append("<p>No cell of this assignment is graded automatically: every point is given by hand.</p>")

    counts = Counter(s for r in results for s in (r.statuses or ["ok"]))
    late = sum(1 for r in results if r.late_seconds > 0 or "late" in r.statuses or getattr(r, "late_marker", False))
    if late and "late" not in counts:
        counts["late"] = late
    rows = "".join(f"<tr><td>{e(s)}</td><td>{c}</td></tr>" for s, c in sorted(counts.items(), key=lambda x: (-x[1], x[0])))
    parts.append(f'<h3>Statuses</h3><table class="statuses"><thead><tr><th>status</th><th>submissions</th></tr>'
                 f"</thead><tbody>{rows}</tbody></table>")

    if order:
        rows = []
        for gid, points in order:
            held = [(r, t) for r in results for t in r.tests if t.grade_id == gid]
            passed = sum(1 for r, t in held if earned_in_full(r, t))
            rate = passed / len(held) if held else 0.0
            bar = (f'<svg width="104" height="12" aria-hidden="true"><rect x="0" y="1" width="100" height="10" '
                   f'fill="#eee"/><rect x="0" y="1" width="{round(100 * rate)}" height="10" fill="#3b6fc4"/></svg>')
            rows.append(f"<tr><td><code>{e(gid)}</code></td><td>{num(points)}</td><td>{passed} / {len(held)}</td>"
                        f"<td>{round(100 * rate)}% {bar}</td></tr>")
        parts.append('<h3>Test cells</h3><p>Pass rate: the fraction of students earning the cell’s points '
                     '(instructor overrides applied).</p><table class="passrate"><thead><tr><th>test</th>'
                     f'<th>points</th><th>earned by</th><th>pass rate</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')

    manual = {}
    for r in results:
        for c in r.manual:
            manual.setdefault(c.grade_id, c.points)
    if manual:
        rows = []
        for gid, points in manual.items():
            marks = [r.marks[gid].points for r in results if gid in r.marks and r.marks[gid].points is not None]
            mean = f"{num(round(statistics.mean(marks), 2))}" if marks else "–"
            rows.append(f"<tr><td><code>{e(gid)}</code></td><td>{num(points)}</td><td>{len(marks)} / {n}</td>"
                        f"<td>{mean}</td></tr>")
        parts.append('<h3>Graded by hand</h3><table class="handgraded"><thead><tr><th>cell</th><th>points</th>'
                     f'<th>graded</th><th>mean</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')

    parts.append("<h3>Score distribution</h3>" + histogram(results))

    rows = []
    for r in results:
        reasons = attention_reasons(r)
        if not reasons:
            continue
        details = "".join(f"<li>{e(d)}</li>" for d in r.details)
        details += "".join(f"<li>(instructor) {e(d)}</li>" for d in getattr(r, "instructor_notes", []))
        rows.append(f"<tr><td>{e(who(r))}</td><td><code>{e(r.student)}</code>"
                    + (f"<br>LMS {e(r.lms_id)}" if r.lms_id else "") + "</td>"
                    f"<td>{e('; '.join(reasons))}" + (f"<ul>{details}</ul>" if details else "") + "</td>"
                    f"<td>{num(r.total)} / {num(r.max_score)}</td></tr>")
    if rows:
        parts.append('<h3>Who needs attention</h3><table class="attention"><thead><tr><th>name</th><th>id</th>'
                     f'<th>why</th><th>total</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    else:
        parts.append("<h3>Who needs attention</h3><p>Nobody: every submission was graded normally, on time and in full.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def summary_html(results: list[Result], assignments: dict[str, Assignment] | None = None) -> str:
    """The class summary page (for the instructor only: it names every student and shows instructor notes).
    Reads of each ``Result``: student, name, lms_id, assignment, statuses, details, instructor_notes, tests
    (grade_id, points) with ``test_points`` (overrides), manual, marks, ungraded, late_seconds, late_marker,
    late_penalty, total and max_score; of ``assignments`` (optional): the test cells' order and points from
    each source notebook, and the assignments that have no result yet."""
    assignments = assignments or {}
    names = sorted({r.assignment for r in results} | set(assignments))
    body = ['<header class="head"><h1>Class summary</h1>',
            f"<p>{len(results)} result{'s' if len(results) != 1 else ''}, {len({r.student for r in results})} "
            f"student{'s' if len({r.student for r in results}) != 1 else ''}, {len(names)} "
            f"assignment{'s' if len(names) != 1 else ''}.</p></header>"]
    for name in names:
        group = sorted((r for r in results if r.assignment == name), key=lambda r: (who(r).casefold(), r.student))
        if group:
            body.append(assignment_section(name, group, assignments.get(name)))
        else:
            body.append(f'<section class="assignment"><h2>{e(name)}</h2><p>No submissions graded.</p></section>')
    return page("Class summary", "\n".join(body), with_math=False)
