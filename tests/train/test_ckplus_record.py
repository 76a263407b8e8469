"""tools/ckplus_protocols.py --record: folds kept in a committed folder come back into --out and
are not trained again; a missing fold is trained alone (--run-folds k+1) and then recorded; the
card has one row per recorded fold with the issue's fields."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ckplus_protocols", REPO / "tools" / "ckplus_protocols.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)


def _args(tmp_path: Path, **over) -> argparse.Namespace:
    values = dict(out=tmp_path / "out", record=tmp_path / "record", data=tmp_path / "ckplus48", arch="pyfer",
                  epochs=200, folds=10, seed=0, batch_size=16, lr=None, optimizer="sgd-pyfer", augment=None,
                  threads=None, precision=None, partial={"random6": 3})
    values.update(over)
    return argparse.Namespace(**values)


def _fold_result(k: int) -> dict:
    return {"fold": k, "n_test": 31, "accuracy": 0.5 + k / 100, "best_epoch": 150 + k, "seconds": 1000.0 + k}


def test_recorded_folds_come_back_and_only_missing_ones_train(tmp_path, monkeypatch):
    args = _args(tmp_path)
    for k in (0, 1):  # two folds done in an earlier session
        kept = args.record / "random6" / f"fold{k:02d}"
        kept.mkdir(parents=True)
        (kept / "test.json").write_text(json.dumps(_fold_result(k)))
        (kept / "history.csv").write_text("epoch,loss\n1,1.0\n")
    calls = []

    def fake_train(cmd):  # what edge-fer train would leave: the fold's files
        calls.append(cmd)
        k = int(cmd[cmd.index("--run-folds") + 1]) - 1
        fold = args.out / "random6" / f"fold{k:02d}"
        fold.mkdir(parents=True, exist_ok=True)
        (fold / "test.json").write_text(json.dumps(_fold_result(k)))
        (fold / "history.csv").write_text("epoch,loss\n1,0.9\n")

    monkeypatch.setattr(tool, "train", fake_train)
    tool.run_recorded("random6", args)
    assert [c[c.index("--run-folds") + 1] for c in calls] == ["3"], "only fold 2 trains"
    for k in (0, 1, 2):
        assert json.loads((args.record / "random6" / f"fold{k:02d}" / "test.json").read_text())["fold"] == k
        assert (args.out / "random6" / f"fold{k:02d}" / "history.csv").is_file()

    calls.clear()
    tool.run_recorded("random6", args)  # all recorded: one call that only gathers protocol.json
    assert len(calls) == 1 and calls[0][calls[0].index("--run-folds") + 1] == "3"


def test_card_rows_have_the_issues_fields(tmp_path):
    args = _args(tmp_path, partial={})
    for name, k in (("random6", 0), ("subject6", 4)):
        kept = args.record / name / f"fold{k:02d}"
        kept.mkdir(parents=True)
        (kept / "test.json").write_text(json.dumps(_fold_result(k)))
    rows = tool.card(args.record, ["random6", "random7", "subject6"], args)["runs"]
    assert [(r["protocol"], r["classes"], r["fold"]) for r in rows] == [("paper-random", 6, 0), ("subject", 6, 4)]
    for row in rows:
        assert {"epochs", "test_accuracy", "wall_s", "command"} <= set(row) and row["epochs"] == 200
        assert f"--run-folds {row['fold'] + 1}" in row["command"] and "--optimizer sgd-pyfer" in row["command"]


def test_card_rows_name_each_folds_precision(tmp_path):
    """Folds trained before --precision existed are float32; a mixed_bfloat16 fold says so, in its
    row and in its own command, whatever the gathering call was given."""
    args = _args(tmp_path, partial={}, precision="mixed_bfloat16")
    for k, extra in ((0, {}), (1, {"precision": "mixed_bfloat16"}), (2, {"precision": "float32"})):
        kept = args.record / "random6" / f"fold{k:02d}"
        kept.mkdir(parents=True)
        (kept / "test.json").write_text(json.dumps({**_fold_result(k), **extra}))
    rows = tool.card(args.record, ["random6"], args)["runs"]
    assert [r["precision"] for r in rows] == ["float32", "mixed_bfloat16", "float32"]
    summary, = tool.card(args.record, ["random6"], args)["summary"]
    assert summary["folds"] == 3 and summary["min"] == 0.5 and summary["max"] == 0.52
    assert summary["mean"] == pytest.approx(0.51) and summary["sd"] == pytest.approx(0.01)
    assert summary["folds_reaching_paper"] == 0 and summary["paper"] == 0.963
    own = [r["command"].split("(this fold: ")[1] for r in rows]
    assert ["--precision mixed_bfloat16" in c for c in own] == [False, True, False]


def test_summary_counts_the_folds_that_reach_the_papers_figure():
    runs = [{"protocol": "paper-random", "classes": 6, "test_accuracy": a} for a in (30 / 31, 29 / 31, 0.963)]
    runs += [{"protocol": "paper-random", "classes": 7, "test_accuracy": a} for a in (0.8571, 0.85)]
    six, seven = tool.summarise(runs)
    assert (six["classes"], six["folds_reaching_paper"], six["max"]) == (6, 2, 30 / 31)
    assert (seven["classes"], seven["folds_reaching_paper"], seven["sd"]) == (7, 1, pytest.approx(0.00502, abs=1e-5))
