"""The live view of ``edge-fer run --serve``: an HTTP server thread, MJPEG, Server-Sent Events
and one offline page. See :mod:`edge_fer.serve.server` for the routes and the security rules.

    from edge_fer.serve import FerServer, ServeOptions

    with FerServer.create_from_options(ServeOptions(port=0)) as server:
        print(server.url)
        server.publish(result, frame_bgr)
"""

from .options import DEFAULT_HOST, DEFAULT_MAX_CLIENTS, DEFAULT_PORT, ServeOptions
from .server import FerServer

__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_CLIENTS", "DEFAULT_PORT", "FerServer", "ServeOptions"]
