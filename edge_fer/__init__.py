"""edge-fer: facial expression recognition on edge devices.

Importing this package is cheap and never imports TensorFlow.
"""

__version__ = "0.1.0"
