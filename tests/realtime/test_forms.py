"""Form definitions and answers checked without I/O (realtime/forms.py)."""

import time

import pytest

from realtime.forms import DefinitionError, check_answers, missing_required, parse_definition

GOOD = {
    "title": "Order",
    "required_before_wrap_up": True,
    "fields": [
        {"key": "reason", "label": "Reason", "type": "select", "required": True, "choices": ["refund", "delivery"]},
        {"key": "order_no", "label": "Order", "type": "text", "pattern": r"A-\d{4}", "max_length": 6},
        {"key": "items", "label": "Items", "type": "number", "min": 1, "max": 10},
        {"key": "when", "label": "Since", "type": "date"},
        {"key": "topics", "label": "Topics", "type": "multiselect", "choices": ["a", "b"]},
        {"key": "mail", "label": "E-mail", "type": "email"},
        {"key": "phone", "label": "Callback", "type": "phone"},
        {"key": "ok", "label": "Solved", "type": "boolean", "required": True},
        {"key": "note", "label": "Note", "type": "textarea"},
    ],
}


def fields_with(i: int, **change):
    fields = [dict(f) for f in GOOD["fields"]]
    fields[i].update(change)
    return {**GOOD, "fields": fields}


@pytest.mark.parametrize("raw, where", [
    (fields_with(0, choices=None), "fields[0].choices: required for select"),
    (fields_with(4, choices=[]), "fields[4].choices: required for multiselect"),
    (fields_with(1, choices=["x"]), "fields[1].choices: only for select"),
    (fields_with(1, pattern="(unclosed"), "fields[1].pattern: not a valid regular expression"),
    (fields_with(1, pattern="x" * 201), "fields[1].pattern"),
    (fields_with(2, min=5, max=1), "fields[2].min: larger than max"),
    (fields_with(3, min=1), "fields[3].min: only for number"),
    (fields_with(2, max_length=3), "fields[2].max_length: only for text"),
    (fields_with(1, key="reason"), "fields[1].key: 'reason' is used by another field"),
    (fields_with(1, key="Bad Key"), "fields[1].key"),
    (fields_with(1, type="colour"), "fields[1].type"),
    (fields_with(1, colour="red"), "fields[1]"),
    ({**GOOD, "fields": []}, "fields"),
    ({"fields": GOOD["fields"]}, "title"),
])
def test_an_invalid_definition_names_the_field(raw, where):
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw)
    assert str(info.value).startswith(where), str(info.value)


def test_answers_are_checked_field_by_field_and_cleaned():
    form = parse_definition(GOOD)
    data = {"reason": "refund", "order_no": "A-1234", "items": 2, "when": "2026-11-27", "topics": ["b"],
            "mail": "x@example.org", "phone": "+49 30 1234567", "ok": False}
    clean, errors = check_answers(form, data, draft=False)
    assert errors == {} and clean["phone"] == "+49301234567" and clean["ok"] is False
    bad = {"reason": "other", "order_no": "B-1", "items": 11, "when": "2026-13-01", "topics": ["c"],
           "mail": "nope", "phone": "12", "ok": "yes", "extra": 1}
    _, errors = check_answers(form, bad, draft=False)
    assert set(errors) == {"reason", "order_no", "items", "when", "topics", "mail", "phone", "ok", "extra"}
    assert errors["items"] == "at most 10" and "choices" in errors["reason"]
    _, errors = check_answers(form, {"order_no": "A-12345"}, draft=False)
    assert errors == {"reason": "required", "ok": "required", "order_no": "at most 6 characters"}
    # A draft may leave required fields empty, not give bad values.
    assert check_answers(form, {"items": 3}, draft=True)[1] == {}
    assert check_answers(form, {"items": 0}, draft=True)[1] == {"items": "at least 1"}
    assert missing_required(form, {"reason": "refund"}) == ["ok"]
    assert missing_required(form, None) == ["reason", "ok"]


def test_a_pattern_that_backtracks_without_end_is_cut_off():
    form = parse_definition({"title": "t", "fields": [{"key": "a", "label": "A", "type": "text", "pattern": "(a|aa)+c"}]})
    started = time.monotonic()
    _, errors = check_answers(form, {"a": "a" * 60}, draft=False)
    assert errors == {"a": "the format check took too long; the form's pattern needs simplifying"}
    assert time.monotonic() - started < 1.0
