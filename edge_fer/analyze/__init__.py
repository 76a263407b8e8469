"""Batch analysis of videos, photos, folders and recording URLs (``edge-fer analyze``).

    from edge_fer.analyze import AnalyzeOptions, analyze

    analysis = analyze(["sessions/"], AnalyzeOptions(workers=4))
    for row in analysis:                     # FaceRow
        print(row.source, row.frame, row.time_ms, row.track_id, row.expression, row.score)
    print(analysis.summary.to_line())

Modules: ``items`` (discovery), ``worker`` (one source -> rows), ``engines`` (the Engine
protocol, its in-order scheduler, in-process and process-pool engines), ``ray_engine``,
``writers`` (csv/jsonl/parquet and side files), ``summary``, ``timeline`` (PNG plots,
matplotlib), ``progress`` (the stderr bar), ``api``.
"""

from .api import Analysis, AnalyzeOptions, WriteOptions, analyze, write_analysis
from .items import WorkItem, discover
from .summary import AnalysisSummary, TrackSummary
from .worker import FaceRow, SourceResult

__all__ = ["Analysis", "AnalyzeOptions", "AnalysisSummary", "FaceRow", "SourceResult", "TrackSummary",
           "WorkItem", "WriteOptions", "analyze", "discover", "write_analysis"]
