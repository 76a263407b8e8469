"""Batch analysis of videos, photos, folders and recording URLs (``edge-fer analyze``).

    from edge_fer.analyze import AnalyzeOptions, analyze

    analysis = analyze(["sessions/"], AnalyzeOptions(workers=4))
    for row in analysis:                     # FaceRow
        print(row.source, row.frame, row.time_ms, row.track_id, row.expression, row.score)
    print(analysis.summary.to_line())

Modules: ``items`` (discovery), ``worker`` (one source -> rows), ``engines`` (the Engine
protocol, its in-order scheduler, in-process and process-pool engines), ``ray_engine``,
``outputs`` (output names, checks before the work, temp files), ``writers`` (csv/jsonl/parquet
and side files), ``resume`` (reading earlier runs back; the progress file), ``summary`` (and
short tracks), ``timeline`` (PNG plots, matplotlib), ``progress`` (the stderr bar), ``api``.
"""

from .api import Analysis, AnalyzeOptions, WriteOptions, analyze, write_analysis
from .items import Discovery, WorkItem, discover, discover_all
from .summary import AnalysisSummary, TrackSummary
from .worker import FaceRow, SourceResult

__all__ = ["Analysis", "AnalyzeOptions", "AnalysisSummary", "Discovery", "FaceRow", "SourceResult", "TrackSummary",
           "WorkItem", "WriteOptions", "analyze", "discover", "discover_all", "write_analysis"]
