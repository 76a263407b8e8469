"""Everything that yields frames, behind one :func:`open_source`: cameras and streams
(:mod:`.live`: a reader thread keeps the newest frame), video files and image folders or single
images (:mod:`.capture`), the built-in demo image; each a :class:`FrameSource` yielding
``(index, time_ms, frame_bgr)`` and a context manager. :mod:`.images` is the one safe image
reader every part of edge-fer uses; :mod:`.frames` the shared base and OpenCV's capture.
"""

from .capture import (DEFAULT_CAMERA, FALLBACK_FPS, STILL_SECONDS, ImageSource, Pacer, SourceOptions,
                      VideoSource, open_source)
from .frames import Frame, FrameSource, open_capture
from .images import DEMO_IMAGE, IMAGE_SUFFIXES, decode_image, decode_image_strict, list_images, read_image
from .live import LatestFrameReader, LiveSource

__all__ = ["DEFAULT_CAMERA", "DEMO_IMAGE", "FALLBACK_FPS", "Frame", "FrameSource", "IMAGE_SUFFIXES", "ImageSource",
           "LatestFrameReader", "LiveSource", "Pacer", "STILL_SECONDS", "SourceOptions", "VideoSource",
           "decode_image", "decode_image_strict", "list_images", "open_capture", "open_source", "read_image"]
