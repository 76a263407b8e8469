"""Batch analysis of videos, photos, folders and recording URLs (``edge-fer analyze``).

    import edge_fer

    analysis = edge_fer.analyze(["sessions/"], edge_fer.AnalyzeOptions(workers=4))
    for row in analysis:                     # edge_fer.FaceRow
        print(row.source, row.frame, row.time_ms, row.track_id, row.expression, row.score)
    print(analysis.summary.to_line())

Modules: ``items`` (discovery), ``worker`` (one source -> rows), ``engines`` (in-process,
process pool, Ray), ``writers`` (csv/jsonl/parquet and side files), ``summary``,
``timeline`` (PNG plots, matplotlib), ``progress`` (the stderr bar), ``api``.
"""

import sys
import types

from .api import Analysis, AnalyzeOptions, WriteOptions, analyze, write_analysis
from .items import WorkItem, discover
from .summary import AnalysisSummary, TrackSummary
from .worker import FaceRow, SourceResult

__all__ = ["Analysis", "AnalyzeOptions", "AnalysisSummary", "FaceRow", "SourceResult", "TrackSummary",
           "WorkItem", "WriteOptions", "analyze", "discover", "write_analysis"]


class _CallablePackage(types.ModuleType):
    """``edge_fer.analyze`` is this package once any of its modules is imported (Python binds a
    subpackage to its parent's attribute), so the package itself is callable: calling it is
    :func:`~edge_fer.analyze.api.analyze`, whichever of the two ``edge_fer.analyze`` names."""

    def __call__(self, paths, options: AnalyzeOptions = AnalyzeOptions(), on_event=None) -> Analysis:
        return analyze(paths, options, on_event)


sys.modules[__name__].__class__ = _CallablePackage
