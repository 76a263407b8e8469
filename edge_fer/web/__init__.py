"""The phone page: edge-fer's camera-to-label loop in a browser (MediaPipe Tasks for Web).

``export_web(DIR, WebExportOptions(...))`` writes a static folder any server can host;
``mount_device_page(server, stack)`` puts the page at ``/device/`` of ``edge-fer run --serve``.
See docs/phone.md.
"""

from .export import WebExport, WebExportOptions, check_web_model, export_web, mount_device_page, web_files

__all__ = ["WebExport", "WebExportOptions", "check_web_model", "export_web", "mount_device_page", "web_files"]
