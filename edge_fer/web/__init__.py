"""The phone page: edge-fer's camera-to-label loop in a browser (MediaPipe Tasks for Web).

``export_web(DIR, WebExportOptions(...))`` writes a static folder any server can host;
``web_files(options)`` gives the same files to ``edge-fer run --serve`` for ``/device/``.
See docs/phone.md.
"""

from .export import WebExport, WebExportOptions, check_web_model, export_web, web_files

__all__ = ["WebExport", "WebExportOptions", "check_web_model", "export_web", "web_files"]
