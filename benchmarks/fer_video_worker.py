"""The `fer` package's own batch analysis of videos (``fer.Video(...).analyze``), as a user runs it
on a folder, for benchmarks/analyze_scaling.py; in benchmarks/.venv-fer.

    benchmarks/.venv-fer/bin/python benchmarks/fer_video_worker.py FOLDER OUTDIR

Every ``*.mp4`` in FOLDER, in name order, through one ``FER()`` (its defaults: Haar at full
resolution, the mini-Xception TFLite), every frame (``frequency=1``), nothing written but its
results (no frames, video, zip or display; fer's own files go to OUTDIR, and its data.csv to the
working folder: run it from OUTDIR). Prints one JSON line:
the frames fer reports.
"""

import json
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")


def main(folder: str, outdir: str) -> int:
    from fer.classes import Video
    from fer.fer import FER

    detector = FER()
    frames = 0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".mp4"):
            continue
        video = Video(os.path.join(folder, name), outdir=outdir)
        results = video.analyze(detector, display=False, frequency=1, save_frames=False, save_video=False,
                                annotate_frames=False, zip_images=False)
        frames += len(results)
    print(json.dumps({"frames": frames}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
