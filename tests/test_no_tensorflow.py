"""The runtime half never imports TensorFlow or Keras: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, sys
import edge_fer
assert "cv2" not in sys.modules and "numpy" not in sys.modules, "import edge_fer must stay cheap"
import edge_fer.cli
from edge_fer.cli import main
model, image = sys.argv[1], sys.argv[2]
main(["run", "--image", image, "--headless", "--json", "--model", model, "--labels", "fer2013",
      "--input-scale", "0.00784313725", "--input-offset", "-1"], standalone_mode=False)
edge_fer.FerPipeline, edge_fer.FrameResult, edge_fer.run
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print(json.dumps({"heavy": heavy}))
"""


def test_run_imports_no_tensorflow(media_dir, peer_dir):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(peer_dir / "emotion_model_quantized.tflite"),
                           str(media_dir / "justin.jpg")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    frame_line, report_line = proc.stdout.strip().splitlines()
    assert len(json.loads(frame_line)["faces"]) == 1  # the run really happened
    assert json.loads(report_line) == {"heavy": []}
