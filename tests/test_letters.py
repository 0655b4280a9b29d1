"""The letters: one table {kind: composer}, filled from each feature's own letters module, with
one composer for every kind of delivery the outbox accepts, all called the same way; the
features' letters depend on app/outbox/text.py, never on the table (no import cycle).

What each letter says is checked by tests/test_golden_mail.py."""

import inspect

from app.outbox import deliveries, letters
from app.outbox.text import Text
from tests.test_layout import _module_graph, _reaches


def test_there_is_one_composer_for_each_kind_of_delivery_the_outbox_accepts():
    assert set(letters.TABLE) == deliveries.KINDS
    # No kind written by two features (the later would silently win).
    assert sum(len(part) for part in letters.PARTS) == len(letters.TABLE)


def test_every_composer_is_called_the_same_way_and_returns_a_text():
    for kind, compose in letters.TABLE.items():
        signature = inspect.signature(compose)
        assert list(signature.parameters) == ["delivery", "payload", "common", "settings", "at"], (
            kind
        )
        assert signature.return_annotation in (Text, "Text"), kind


def test_only_the_sending_uses_the_table_and_no_letters_module_is_in_an_import_cycle():
    graph = _module_graph()
    users = sorted(name for name, imported in graph.items() if "app.outbox.letters" in imported)
    assert users == ["app.outbox.sending"]
    feature_letters = [name for name in graph if name.endswith(".letters")]
    assert len(feature_letters) == 7  # the table and the six features' letters
    lower = ["app.outbox.text", "app.outbox.deliveries", "app.outbox.mailtext"]
    for name in feature_letters + lower:
        cycle = [other for other in graph[name] if _reaches(graph, other, name)]
        assert cycle == [], f"{name} is in an import cycle through {cycle}"
