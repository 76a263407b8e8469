"""`edge-fer run --json` on the sample videos against committed golden JSON lines: the runtime's
output (faces, boxes, labels, scores, landmarks, frame numbers and times) must not change when
code moves. Per-stage latencies are left out (they are measurements); scores may differ by
0.002 and boxes and landmarks by 1 px (other CPUs round differently), labels only where the top
two scores are that close.

Regenerate (only for an intended change of output): ``python tests/test_run_golden.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
VIDEOS = ("woman2.mp4", "test.mp4")
SCORE_TOLERANCE = 0.002
PIXEL_TOLERANCE = 1.0


def run_json(video: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "edge_fer.cli", "run", "--video", str(video), "--headless",
                           "--json"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    for event in events:
        event.pop("latency_ms")
    return events


def close(a, b, tolerance: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b))


def same_face(got: dict, want: dict) -> str:
    """Empty if the two faces agree within tolerance, else what differs."""
    if got["id"] != want["id"] or not close(got["box_xywh"], want["box_xywh"], PIXEL_TOLERANCE):
        return f"id/box {got['id']} {got['box_xywh']} != {want['id']} {want['box_xywh']}"
    if set(got["scores"]) != set(want["scores"]) or any(
            abs(got["scores"][k] - want["scores"][k]) > SCORE_TOLERANCE for k in want["scores"]):
        return f"scores {got['scores']} != {want['scores']}"
    if got["expression"] != want["expression"]:
        top = sorted(want["scores"].values())[-2:]
        if top[1] - top[0] > SCORE_TOLERANCE:
            return f"expression {got['expression']} != {want['expression']}"
    if set(got.get("landmarks", {})) != set(want.get("landmarks", {})) or any(
            not close(got["landmarks"][k], want["landmarks"][k], PIXEL_TOLERANCE) for k in want.get("landmarks", {})):
        return "landmarks differ"
    return ""


@pytest.mark.parametrize("video", VIDEOS)
def test_run_json_matches_the_golden_lines(media_dir, video):
    want = [json.loads(line) for line in (GOLDEN / f"run_{Path(video).stem}.jsonl").read_text().splitlines()]
    got = run_json(media_dir / video)
    assert [e["frame"] for e in got] == [e["frame"] for e in want]
    for g, w in zip(got, want):
        assert g["time_ms"] == pytest.approx(w["time_ms"], abs=0.01), g["frame"]
        assert len(g["faces"]) == len(w["faces"]), f"frame {g['frame']}: {len(g['faces'])} faces, golden {len(w['faces'])}"
        for gf, wf in zip(g["faces"], w["faces"]):
            assert not same_face(gf, wf), f"frame {g['frame']}: {same_face(gf, wf)}"
        assert set(g) == set(w)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import SHARED

    GOLDEN.mkdir(exist_ok=True)
    for name in VIDEOS:
        lines = run_json(SHARED / "data" / "media" / name)
        (GOLDEN / f"run_{Path(name).stem}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
        print(f"wrote {len(lines)} lines for {name}")
