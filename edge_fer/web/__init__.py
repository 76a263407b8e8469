"""The phone page: edge-fer's camera-to-label loop in a browser (MediaPipe Tasks for Web).

``export_web(DIR, WebExportOptions(...))`` writes a static folder any server can host;
``mount_device_page(server, stack)`` puts the page at ``/device/`` of ``edge-fer run --serve``.
See docs/phone.md.
"""

__all__ = ["WebExport", "WebExportOptions", "check_web_model", "export_web", "mount_device_page", "web_files"]


def __getattr__(name: str):
    """The exporter loads on first use (PEP 562), so ``edge_fer.web.paths`` stays light."""
    if name in __all__:
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
