"""Deadlines: which attempt counts, how late it is, and what lateness costs.

* ``--due`` (per assignment or for all), a grace period, per-student extensions (a CSV of
  ``student,assignment,due``; an empty assignment means every assignment);
* the attempt that counts is the last one submitted before the deadline (plus grace), or, when every attempt
  is late, the last one;
* a late-penalty rule: ``10%/day`` (per started day, of the assignment's maximum), ``5%/hour``, ``20%``
  (once), with an optional cap; Canvas's ``_late_`` marker without a time counts as one period late.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

PERIODS = {"day": 86400.0, "hour": 3600.0, "": 0.0}


def parse_time(text: str, what: str = "time") -> datetime:
    """An aware UTC datetime from ISO 8601 (``2026-12-10T23:59``, ``2026-12-10 23:59:00+01:00``); a time
    without an offset is taken as UTC."""
    value = str(text).strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", "+00:00"))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a date and time; use ISO 8601, e.g. 2026-12-10T23:59 "
                         "or 2026-12-10T23:59+01:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class PenaltyRule:
    percent: float = 0.0  # of the assignment's maximum, per period (or once when period is 0)
    period_seconds: float = 0.0
    cap_percent: float = 100.0

    @classmethod
    def parse(cls, text: str | None, cap: float = 100.0) -> "PenaltyRule":
        if not text:
            return cls(cap_percent=cap)
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%\s*(?:/\s*(day|hour))?\s*", str(text))
        if not found:
            raise ValueError(f"--late-penalty {text!r} is not a rule; use e.g. '10%/day', '5%/hour' or '20%'")
        if not 0 <= cap <= 100:
            raise ValueError(f"--late-cap {cap} must be a percentage between 0 and 100")
        return cls(float(found.group(1)), PERIODS[found.group(2) or ""], cap)

    def percent_for(self, late_seconds: float) -> float:
        if late_seconds <= 0 or self.percent == 0:
            return 0.0
        periods = 1 if self.period_seconds == 0 else math.ceil(late_seconds / self.period_seconds)
        return min(self.cap_percent, self.percent * periods)

    def describe(self) -> str:
        if self.percent == 0:
            return "no penalty"
        per = {86400.0: " per started day", 3600.0: " per started hour"}.get(self.period_seconds, " once")
        return f"{self.percent:g}% of the maximum{per} (at most {self.cap_percent:g}%)"


@dataclass
class Deadlines:
    due: dict[str, datetime] = field(default_factory=dict)  # assignment ('*' for all) -> deadline
    grace_seconds: float = 0.0
    rule: PenaltyRule = field(default_factory=PenaltyRule)
    extensions: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (student, assignment|'*')

    def due_for(self, student: str, assignment: str) -> datetime | None:
        for key in ((student, assignment), (student, "*")):
            if key in self.extensions:
                return self.extensions[key]
        return self.due.get(assignment, self.due.get("*"))

    def late_seconds(self, student: str, assignment: str, submitted: datetime | None) -> float:
        due = self.due_for(student, assignment)
        if due is None or submitted is None:
            return 0.0
        return max(0.0, (submitted - due).total_seconds() - self.grace_seconds)

    def to_json(self) -> dict:
        return {"due": {a: t.isoformat() for a, t in self.due.items()}, "grace_seconds": self.grace_seconds,
                "rule": [self.rule.percent, self.rule.period_seconds, self.rule.cap_percent],
                "extensions": [[s, a, t.isoformat()] for (s, a), t in self.extensions.items()]}

    @classmethod
    def from_json(cls, data: dict | None) -> "Deadlines":
        data = data or {}
        return cls(due={a: parse_time(t) for a, t in data.get("due", {}).items()},
                   grace_seconds=float(data.get("grace_seconds", 0)),
                   rule=PenaltyRule(*data.get("rule", [0.0, 0.0, 100.0])),
                   extensions={(s, a): parse_time(t) for s, a, t in data.get("extensions", [])})


def parse_due_arguments(values: list[str] | None, assignments: list[str]) -> dict[str, datetime]:
    """``--due 2026-12-10T23:59`` (every assignment) or ``--due ex30_7_1=2026-12-10T23:59`` (one)."""
    due: dict[str, datetime] = {}
    for value in values or []:
        name, sep, moment = value.rpartition("=") if "=" in value.split("T")[0] else ("", "", value)
        if name and name not in assignments:
            raise ValueError(f"--due {value!r} names assignment {name!r}; the assignments are {', '.join(assignments)}")
        due[name or "*"] = parse_time(moment, "--due")
    return due


def read_extensions(path: Path) -> dict[tuple[str, str], datetime]:
    """A CSV ``student,assignment,due`` (header required; an empty assignment extends every assignment)."""
    extensions = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = {"student", "due"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: the extensions file needs the columns student, assignment, due "
                             f"(missing: {', '.join(sorted(missing))})")
        for number, row in enumerate(reader, start=2):
            if not (row.get("student") or "").strip():
                raise ValueError(f"{path} line {number}: no student")
            extensions[(row["student"].strip(), (row.get("assignment") or "").strip() or "*")] = \
                parse_time(row["due"], f"{path} line {number}: due")
    return extensions


def pick_attempts(submissions: list, deadlines: Deadlines) -> list:
    """One attempt per (student, assignment): the last before the deadline (plus grace), else the last one.
    The choice is written into the chosen attempt's notes."""
    groups: dict[tuple[str, str], list] = {}
    for sub in submissions:
        groups.setdefault((sub.student, sub.assignment), []).append(sub)
    chosen = []
    for (student, assignment), attempts in groups.items():
        if len(attempts) == 1:
            chosen.append(attempts[0])
            continue
        ordered = sorted(attempts, key=lambda s: (s.timestamp is not None, s.timestamp or datetime.min))
        on_time = [s for s in ordered if deadlines.late_seconds(student, assignment, s.timestamp) == 0
                   and s.timestamp is not None]
        pick = (on_time or ordered)[-1]
        when = pick.timestamp.isoformat() if pick.timestamp else "an unknown time"
        rule = "the last one before the deadline" if on_time and pick is not ordered[-1] else "the last one"
        pick.notes.append(f"{len(attempts)} submissions; graded the one of {when} ({rule})")
        chosen.append(pick)
    return chosen


def apply_lateness(result, deadlines: Deadlines, late_marker: bool = False) -> None:
    """Set a result's deadline, lateness and penalty (recomputed whenever outputs are written)."""
    due = deadlines.due_for(result.student, result.assignment)
    submitted = parse_time(result.timestamp) if result.timestamp else None
    result.due = due.isoformat() if due else ""
    result.late_seconds = deadlines.late_seconds(result.student, result.assignment, submitted)
    marked_only = late_marker and submitted is None and due is not None
    seconds = result.late_seconds or (max(deadlines.rule.period_seconds, 1.0) if marked_only else 0.0)
    percent = deadlines.rule.percent_for(seconds)
    result.late_penalty = round(result.max_score * percent / 100.0, 6)
    result.statuses = [s for s in result.statuses if s != "late"]
    result.details = [d for d in result.details if not d.startswith("late: ")]
    if seconds > 0:
        how = (f"{timedelta(seconds=round(seconds))} after the deadline" if not marked_only
               else "marked late by the LMS (no time given; counted as one period late)")
        result.add("late", f"late: {how}; penalty {result.late_penalty:g} points ({deadlines.rule.describe()})")
