"""``edge-fer bench``: latency percentiles per stage, FPS, CPU, peak RSS and cold start.

Importing this package is cheap: :mod:`.worker` is started as ``python -m edge_fer.bench.worker``
and its cold start is measured from before that interpreter starts.
"""
