"""The Hypothesis settings every property test here uses (import after ``importorskip``)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def examples(count: int):
    """``count`` examples, no deadline (the box may be busy), no example database written into
    the working tree, and none of the health checks a busy box or a big strategy trips."""
    return settings(max_examples=count, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example, HealthCheck.function_scoped_fixture,
                                           HealthCheck.filter_too_much])
