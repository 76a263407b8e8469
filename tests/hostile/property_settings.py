"""What every property test here shares (import after ``importorskip``): the Hypothesis
settings, the two-sizes rule (a bounded run in the suite, many more examples under ``-m slow``)
and the one-line checks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings


def examples(count: int):
    """``count`` examples, no deadline (the box may be busy), no example database written into
    the working tree, and none of the health checks a busy box or a big strategy trips."""
    return settings(max_examples=count, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])


def bounded_and_many(normal: int, many: int, **strategies):
    """One property as two tests: ``normal`` examples in the suite and ``many`` under ``-m slow``
    (``test_x, test_x_many = bounded_and_many(100, 600, text=...)(x_property)``); arguments
    without a strategy stay pytest fixtures."""
    def tests(prop):
        return (examples(normal)(given(**strategies)(prop)),
                pytest.mark.slow(examples(many)(given(**strategies)(prop))))
    return tests


def one_line(text: str) -> None:
    assert text and "\n" not in text and "\r" not in text, repr(text)


def only_edge_fer_lines(captured) -> None:
    """Nothing on fd 1 or 2 but edge-fer's own log lines (a decoder's, FFmpeg's, OpenCV's: none)."""
    foreign = [line for line in (captured.out + captured.err).splitlines() if not line.startswith("edge-fer: ")]
    assert not foreign, foreign
