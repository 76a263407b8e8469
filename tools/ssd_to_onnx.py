"""Same as ``edge-fer convert-ssd`` (kept for scripts that call the tool):

    python tools/ssd_to_onnx.py [--quantize int8|none] [--model-dir DIR] [--out-dir DIR] [--calibration PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_fer.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert-ssd", *sys.argv[1:]]))
