"""marlpg.scale.jobs.start_ray: a slow Ray start is tried again, other errors are not (no Ray needed)."""
from __future__ import annotations

import pytest

from marlpg.scale.jobs import RAY_START_TIMEOUT, start_ray

TIMEOUT = Exception(f"The current node {RAY_START_TIMEOUT}. This could happen because some of the raylet failed")


class FakeRay:
    """Records init and shutdown calls; ``init`` raises the queued errors first, then succeeds."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = []

    def init(self, **options):
        self.calls.append(("init", options))
        if self.errors:
            raise self.errors.pop(0)
        return "context"

    def shutdown(self):
        self.calls.append(("shutdown", None))


def test_a_timed_out_start_is_retried_after_a_shutdown_and_a_pause(capsys):
    ray, pauses = FakeRay(TIMEOUT), []
    assert start_ray(ray, num_cpus=2, pause=7, sleep=pauses.append) == "context"
    assert [name for name, _ in ray.calls] == ["init", "shutdown", "init"]
    assert pauses == [7]
    options = ray.calls[-1][1]
    assert options["num_cpus"] == 2 and options["include_dashboard"] is False and options["logging_level"] == "ERROR"
    assert "try 1 of 3" in capsys.readouterr().err


def test_a_start_that_keeps_timing_out_ends_in_a_clear_error():
    ray, pauses = FakeRay(TIMEOUT, TIMEOUT, TIMEOUT), []
    with pytest.raises(RuntimeError, match="within 30 s on each of 3 tries"):
        start_ray(ray, sleep=pauses.append)
    assert [name for name, _ in ray.calls].count("init") == 3 and len(pauses) == 2


def test_other_errors_are_not_retried():
    ray = FakeRay(ValueError("bad address"))
    with pytest.raises(ValueError, match="bad address"):
        start_ray(ray, address="nowhere:1", sleep=lambda _: pytest.fail("must not pause"))
    assert [name for name, _ in ray.calls] == ["init"]


def test_attempts_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="attempts"):
        start_ray(FakeRay(), attempts=0)
