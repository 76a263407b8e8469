"""Issue 22's summary files (docs/model_card/clean_fer2013.json, cyclegan_balance.json): the fields
the issue names, and the committed files up to date with the measurements they are gathered from
(tools/seed_cards.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "docs" / "model_card"
spec = importlib.util.spec_from_file_location("seed_cards", REPO / "tools" / "seed_cards.py")
seed_cards = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed_cards)


def test_clean_card_has_the_issues_fields_and_is_up_to_date():
    card = seed_cards.clean_card()
    assert json.loads((CARD / "clean_fer2013.json").read_text()) == card, "rerun python tools/seed_cards.py"
    assert set(card["flagged"]) == {"constant", "no_face", "label"}
    label = card["precision_recall_vs_ferplus"]["label_wrong"]["overall"]
    assert 0 < label["precision"] <= 1 and 0 < label["recall"] <= 1
    assert label["hits"] == round(label["precision"] * label["flagged"])
    assert card["runs"] and {r["labels"] for r in card["runs"]} <= {"original", "cleaned", "ferplus"}
    for run in card["runs"]:
        assert {"seed", "val_accuracy", "val_accuracy_ferplus", "command"} <= set(run)
        assert 0 < run["val_accuracy"] < 1 and f"--seed {run['seed']}" in run["command"]


def test_balance_card_has_the_issues_fields_and_is_up_to_date():
    source = CARD / "cyclegan" / "train_compare.json"
    if not source.is_file():
        pytest.skip("tools/balance_compare.py has not written its table yet")
    card = seed_cards.balance_card(json.loads(source.read_text()))
    assert json.loads((CARD / "cyclegan_balance.json").read_text()) == card, "rerun python tools/seed_cards.py"
    for run in card["runs"]:
        assert isinstance(run["balanced"], bool) and 0 <= run["disgust_recall"] <= 1
        assert {"seed", "val_accuracy", "command"} <= set(run)
