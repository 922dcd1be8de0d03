"""Data forms ("data masks") of queues: what a definition may say and how an answer is checked against
it (docs/forms.md). Pure functions, no I/O: the REST routes (realtime/forms_api.py) and the desktop's
mirror of these rules (desktop_web/static/js/form.js) rely on them.

A definition is checked in two passes: msgspec decodes its shape (types, lengths, known keys), then
`check_definition` applies the rules between fields (choices for a select, min ≤ max, a pattern that
compiles). Every error names its place, e.g. `fields[2].choices: required for select`.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Annotated, Any, Literal

import msgspec
import phonenumbers
import regex

FieldType = Literal["text", "textarea", "number", "date", "select", "multiselect", "email", "phone", "boolean"]
CHOICE_TYPES = ("select", "multiselect")
TEXT_TYPES = ("text", "textarea")
# A text field's longest answer unless the definition says `max_length`.
DEFAULT_MAX_LENGTH = {"text": 500, "textarea": 5000}
MAX_TEXT = 10_000
PATTERN_MAX = 200
# A pattern is matched with the `regex` library under this time limit: an admin's pattern that backtracks
# without end (e.g. "(a|aa)+c") must not stall the hub on an agent's answer.
PATTERN_SECONDS = 0.05
# The longest single-line values of the other types.
SHORT_MAX = {"email": 254, "phone": 40, "date": 10, "select": 200}
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Choice = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class FieldDef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    # The answer's key (also the CSV column): lower case, digits, underscores.
    key: Key
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    type: FieldType
    required: bool = False
    # Text fields: the longest answer (default 500, textarea 5000).
    max_length: Annotated[int, msgspec.Meta(ge=1, le=MAX_TEXT)] | None = None
    # Number fields: the smallest and largest value allowed.
    min: float | None = None
    max: float | None = None
    # Select and multi-select: what may be chosen.
    choices: Annotated[list[Choice], msgspec.Meta(max_length=100)] | None = None
    # Text fields: a regular expression the whole answer must match.
    pattern: Annotated[str, msgspec.Meta(max_length=PATTERN_MAX)] | None = None
    # A line of help shown under the field.
    help: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class FormDef(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    fields: Annotated[list[FieldDef], msgspec.Meta(min_length=1, max_length=60)]
    # Whether a contact's wrap-up may only be completed once the required fields are saved.
    required_before_wrap_up: bool = False


class DefinitionError(ValueError):
    """An invalid definition; the message starts with the place, e.g. `fields[2].choices: ...`."""


def _where(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `str`, got `int` - at `$.fields[2].label`": put the place first, and name
    # a missing or unknown key as the place itself.
    text = str(exc)
    m = re.search(r" - at `\$\.?(.*)`$", text)
    place, what = (m.group(1), text[: m.start()]) if m else ("", text)
    key = re.fullmatch(r"Object (missing required|contains unknown) field `(.*)`", what)
    if key:
        place = f"{place}.{key.group(2)}" if place else key.group(2)
        what = "required" if key.group(1) == "missing required" else "unknown field"
    return f"{place or 'definition'}: {what}"


def parse_definition(raw: Any) -> FormDef:
    """A definition from decoded JSON; DefinitionError names the offending field."""
    try:
        form = msgspec.convert(raw, FormDef)
    except msgspec.ValidationError as exc:
        raise DefinitionError(_where(exc)) from None
    check_definition(form)
    return form


def check_definition(form: FormDef) -> None:
    seen: set[str] = set()
    for i, f in enumerate(form.fields):
        at = f"fields[{i}]"
        if f.key in seen:
            raise DefinitionError(f"{at}.key: {f.key!r} is used by another field")
        seen.add(f.key)
        if f.type in CHOICE_TYPES:
            if not f.choices:
                raise DefinitionError(f"{at}.choices: required for {f.type}")
            if len(set(f.choices)) != len(f.choices):
                raise DefinitionError(f"{at}.choices: each choice once")
        elif f.choices is not None:
            raise DefinitionError(f"{at}.choices: only for select and multiselect")
        if f.type != "number" and (f.min is not None or f.max is not None):
            raise DefinitionError(f"{at}.{'min' if f.min is not None else 'max'}: only for number")
        for name in ("min", "max"):
            v = getattr(f, name)
            if v is not None and not math.isfinite(v):
                raise DefinitionError(f"{at}.{name}: must be a finite number")
        if f.min is not None and f.max is not None and f.min > f.max:
            raise DefinitionError(f"{at}.min: larger than max")
        if f.type not in TEXT_TYPES and f.max_length is not None:
            raise DefinitionError(f"{at}.max_length: only for text and textarea")
        if f.pattern is not None:
            if f.type not in TEXT_TYPES:
                raise DefinitionError(f"{at}.pattern: only for text and textarea")
            try:
                regex.compile(f.pattern)
            except regex.error as exc:
                raise DefinitionError(f"{at}.pattern: not a valid regular expression ({exc})") from None


def field_map(form: FormDef) -> dict[str, FieldDef]:
    return {f.key: f for f in form.fields}


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == []


def check_value(f: FieldDef, v: Any, region: str | None) -> Any:
    """The value to store (a phone number in E.164), or ValueError saying what is wrong."""
    if f.type == "boolean":
        if not isinstance(v, bool):
            raise ValueError("expected true or false")
        return v
    if f.type == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError("expected a number")
        if f.min is not None and v < f.min:
            raise ValueError(f"at least {f.min:g}")
        if f.max is not None and v > f.max:
            raise ValueError(f"at most {f.max:g}")
        return v
    if f.type == "multiselect":
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError("expected a list of choices")
        if len(set(v)) != len(v):
            raise ValueError("each choice once")
        bad = [x for x in v if x not in (f.choices or [])]
        if bad:
            raise ValueError(f"{bad[0][:50]!r} is not one of the choices")
        return v
    if not isinstance(v, str):
        raise ValueError("expected text")
    limit = (f.max_length or DEFAULT_MAX_LENGTH[f.type]) if f.type in TEXT_TYPES else SHORT_MAX[f.type]
    if len(v) > limit:
        raise ValueError(f"at most {limit} characters")
    match f.type:
        case "select":
            if v not in (f.choices or []):
                raise ValueError(f"{v[:50]!r} is not one of the choices")
        case "date":
            try:
                if not DATE.match(v):
                    raise ValueError
                datetime.date.fromisoformat(v)
            except ValueError:
                raise ValueError("expected a date YYYY-MM-DD") from None
        case "email":
            if not EMAIL.match(v):
                raise ValueError("not an e-mail address")
        case "phone":
            try:
                n = phonenumbers.parse(v, region)
            except phonenumbers.NumberParseException:
                raise ValueError("not a phone number") from None
            if not phonenumbers.is_valid_number(n):
                raise ValueError("not a valid phone number")
            return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)
        case _:
            if f.pattern is not None:
                try:
                    ok = regex.fullmatch(f.pattern, v, timeout=PATTERN_SECONDS)
                except TimeoutError:
                    raise ValueError("the format check took too long; the form's pattern needs simplifying") from None
                if not ok:
                    raise ValueError("does not have the expected format")
    return v


def check_answers(form: FormDef, data: dict[str, Any], *, draft: bool, region: str | None = None
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """The answer to store and the errors by field key (empty when it may be stored).

    A draft may leave required fields empty; every value given must still be valid."""
    fields = field_map(form)
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in data:
        if key not in fields:
            errors[key[:64]] = "not a field of this form"
    for key, f in fields.items():
        v = data.get(key)
        if _empty(v) or (f.type == "boolean" and v is None):
            if f.required and not draft:
                errors[key] = "required"
            continue
        try:
            clean[key] = check_value(f, v, region)
        except ValueError as exc:
            errors[key] = str(exc)
    return clean, errors


def missing_required(form: FormDef, data: dict[str, Any] | None) -> list[str]:
    """The required fields an answer leaves empty (all of them when there is no answer)."""
    data = data or {}
    return [f.key for f in form.fields if f.required and _empty(data.get(f.key))]
