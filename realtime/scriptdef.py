"""Call scripts, pure: the definition's types, its validation, the agent's walk through it, and the
placeholders of a step's text. No I/O; realtime/scripts.py keeps and serves them.

A definition is `{"title", "start", "steps": [...]}`; each step has an `id` and a `kind`:
- `text`: words for the agent to say, then `next`;
- `question`: `answers`, each with a `label` and the `next` step it leads to (the branches);
- `field`: a value the agent enters (`key`, `label`, `type`), kept in the path and handed to the
  contact's form, then `next`;
- `end`: the script is done.

Validation names the place of each problem (`steps[3].answers[1].next: no step "x"`). Loops are
allowed (a "did that help? no: try again" branch goes back), but every step must be reachable from
`start` and must have a way to an `end` step, so no agent is ever stuck in a script.

Text is plain: placeholders `{{customer.first_name}}` are replaced by values, nothing is evaluated,
and the result is shown as text, never as HTML.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

StepId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(max_length=4000)]

MAX_STEPS = 200
MAX_PATH = 1000


class Answer(msgspec.Struct, forbid_unknown_fields=True):
    label: Label
    next: StepId


class _Step(msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, omit_defaults=True):
    id: StepId


class TextStep(_Step, tag="text"):
    text: Text
    next: StepId


class QuestionStep(_Step, tag="question"):
    text: Text
    answers: Annotated[list[Answer], msgspec.Meta(min_length=1, max_length=20)]


class FieldStep(_Step, tag="field"):
    key: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]
    label: Label
    next: StepId
    type: Literal["text", "number", "date", "email", "tel"] = "text"
    required: bool = True
    text: Text = ""


class EndStep(_Step, tag="end"):
    text: Text = ""


Step = TextStep | QuestionStep | FieldStep | EndStep


class Definition(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    start: StepId
    steps: Annotated[list[Step], msgspec.Meta(min_length=1, max_length=MAX_STEPS)]


class DefinitionError(ValueError):
    """The definition is not usable; `problems` name each place (the message is the first)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0])
        self.problems = problems


_decoder = msgspec.json.Decoder(Definition)
_at = re.compile(r"^(.*) - at `\$\.?(.*)`$")


def _msgspec_place(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `str` - at `$.steps[3].next`" as "steps[3].next: Expected `str`"."""
    m = _at.match(str(exc))
    return f"{m.group(2) or 'definition'}: {m.group(1)}" if m else f"definition: {exc}"


def decode(raw: bytes | str | object) -> Definition:
    """A definition from JSON bytes or builtins, checked; raises DefinitionError naming the place."""
    try:
        if isinstance(raw, (bytes, str)):
            d = _decoder.decode(raw)
        else:
            d = msgspec.convert(raw, Definition)
    except msgspec.ValidationError as exc:
        raise DefinitionError([_msgspec_place(exc)]) from None
    except msgspec.DecodeError:
        raise DefinitionError(["definition: not valid JSON"]) from None
    check(d)
    return d


def kind(step: Step) -> str:
    return {TextStep: "text", QuestionStep: "question", FieldStep: "field"}.get(type(step), "end")


def targets(step: Step) -> list[tuple[str, str]]:
    """(place within the step, next step id) of each way out of a step."""
    match step:
        case QuestionStep(answers=answers):
            return [(f"answers[{i}].next", a.next) for i, a in enumerate(answers)]
        case TextStep(next=n) | FieldStep(next=n):
            return [("next", n)]
    return []


# Names a step's text may use; `data.<field>` is a field of the contact's data.
PLACEHOLDERS = {
    "customer.first_name", "customer.last_name", "customer.name", "customer.company", "customer.email",
    "call.number", "call.name", "call.id", "agent.name", "agent.username", "queue.name", "queue.label",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]{1,80})\s*\}\}")
_DATA = re.compile(r"data\.[A-Za-z0-9_-]{1,64}")


def placeholder_names(text: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def check(d: Definition) -> None:
    """Raise DefinitionError naming every problem: duplicate ids, unknown targets or start, unknown
    placeholders, steps not reachable from the start, steps with no way to an end, no end at all."""
    problems: list[str] = []
    index: dict[str, int] = {}
    for i, s in enumerate(d.steps):
        if s.id in index:
            problems.append(f"steps[{i}].id: {s.id!r} is already the id of steps[{index[s.id]}]")
        else:
            index[s.id] = i
    if d.start not in index:
        problems.append(f"start: no step {d.start!r}")
    for i, s in enumerate(d.steps):
        for place, target in targets(s):
            if target not in index:
                problems.append(f"steps[{i}].{place}: no step {target!r}")
        for name in placeholder_names(getattr(s, "text", "")):
            if name not in PLACEHOLDERS and not _DATA.fullmatch(name):
                problems.append(f"steps[{i}].text: unknown placeholder {{{{{name}}}}}")
    if not any(isinstance(s, EndStep) for s in d.steps):
        problems.append("steps: no step of kind \"end\"")
    if problems:
        raise DefinitionError(problems)
    by_id = {s.id: s for s in d.steps}
    seen = _reach(d.start, lambda sid: [t for _, t in targets(by_id[sid])])
    back: dict[str, list[str]] = {s.id: [] for s in d.steps}
    for s in d.steps:
        for _, t in targets(s):
            back[t].append(s.id)
    ends = [s.id for s in d.steps if isinstance(s, EndStep)]
    finishing = _reach_many(ends, lambda sid: back[sid])
    for i, s in enumerate(d.steps):
        if s.id not in seen:
            problems.append(f"steps[{i}]: {s.id!r} cannot be reached from the start")
        elif s.id not in finishing:
            problems.append(f"steps[{i}]: {s.id!r} has no way to an end step")
    if problems:
        raise DefinitionError(problems)


def _reach(start: str, nexts) -> set[str]:  # type: ignore[no-untyped-def]
    return _reach_many([start], nexts)


def _reach_many(starts: list[str], nexts) -> set[str]:  # type: ignore[no-untyped-def]
    seen = set(starts)
    todo = deque(starts)
    while todo:
        for n in nexts(todo.popleft()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def remaining(d: Definition, step_id: str) -> int:
    """Steps left on the shortest way from `step_id` to an end (0 at an end)."""
    by_id = {s.id: s for s in d.steps}
    dist = {step_id: 0}
    todo = deque([step_id])
    while todo:
        sid = todo.popleft()
        if isinstance(by_id[sid], EndStep):
            return dist[sid]
        for _, t in targets(by_id[sid]):
            if t not in dist:
                dist[t] = dist[sid] + 1
                todo.append(t)
    return 0


def render(text: str, values: Mapping[str, str | None]) -> str:
    """The text with each placeholder replaced by its value ("" when this call has none)."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1)) or ""), text)


# ---------------------------------------------------------------- the agent's walk


class Move(msgspec.Struct, forbid_unknown_fields=True):
    """One action of the agent: on step `step` (the current one), choose `answer`, enter `value`,
    go on (a text step: neither), or go `back` to the step before."""

    step: StepId
    answer: Annotated[int, msgspec.Meta(ge=0, le=19)] | None = None
    value: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    back: bool = False


class StepError(ValueError):
    """The move does not fit the script or the current step; the message names why."""


def position(d: Definition, path: list[dict[str, object]]) -> list[str]:
    """The steps from the start to the current one (the last), replaying the path: each forward
    move goes to its target, each `back` returns to the step before."""
    by_id = {s.id: s for s in d.steps}
    stack = [d.start]
    for e in path:
        if e.get("back"):
            if len(stack) > 1:
                stack.pop()
        elif isinstance(e.get("to"), str) and e["to"] in by_id:
            stack.append(str(e["to"]))
    return stack


def apply(d: Definition, path: list[dict[str, object]], move: Move, now: float) -> dict[str, object]:
    """The path entry for `move` on the current step; raises StepError when it does not fit."""
    stack = position(d, path)
    current = next(s for s in d.steps if s.id == stack[-1])
    if move.step != current.id:
        raise StepError(f"step: the script is at {current.id!r}, not {move.step!r} (reload to see the current step)")
    if len(path) >= MAX_PATH:
        raise StepError(f"path: at most {MAX_PATH} moves per contact")
    if move.back:
        if len(stack) < 2:
            raise StepError("back: already at the first step")
        return {"step": current.id, "back": True, "to": stack[-2], "at": now}
    match current:
        case QuestionStep(answers=answers):
            if move.answer is None or move.answer >= len(answers):
                raise StepError(f"answer: choose one of 0..{len(answers) - 1} for {current.id!r}")
            a = answers[move.answer]
            return {"step": current.id, "answer": move.answer, "label": a.label, "to": a.next, "at": now}
        case FieldStep(key=key, next=nxt, required=required):
            value = (move.value or "").strip()
            if required and not value:
                raise StepError(f"value: {current.label!r} is required")
            return {"step": current.id, "key": key, "value": value, "to": nxt, "at": now}
        case TextStep(next=nxt):
            return {"step": current.id, "to": nxt, "at": now}
    raise StepError(f"step: {current.id!r} is the end of the script")


def fields_of(path: list[dict[str, object]]) -> dict[str, str]:
    """The last value entered for each field key along the path."""
    return {str(e["key"]): str(e.get("value", "")) for e in path if "key" in e and not e.get("back")}
