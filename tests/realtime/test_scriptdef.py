"""Call script definitions without a hub: validation names the place, the walk replays, text is filled
by plain replacement."""

import pytest

from realtime import scriptdef as sd


def good() -> dict:
    return {"title": "Support", "start": "hello", "steps": [
        {"id": "hello", "kind": "text", "text": "Hello {{customer.first_name}}, {{agent.name}} here.", "next": "why"},
        {"id": "why", "kind": "question", "text": "Why do you call?", "answers": [
            {"label": "Billing", "next": "order"}, {"label": "Other", "next": "bye"}]},
        {"id": "order", "kind": "field", "key": "order", "label": "Order number", "next": "helped"},
        {"id": "helped", "kind": "question", "text": "Did that help?", "answers": [
            {"label": "Yes", "next": "bye"}, {"label": "No, again", "next": "why"}]},
        {"id": "bye", "kind": "end", "text": "Goodbye {{customer.name}}"},
    ]}


def problems(d: dict) -> list[str]:
    with pytest.raises(sd.DefinitionError) as e:
        sd.decode(d)
    return e.value.problems


def test_a_good_definition_with_a_loop_is_accepted():
    d = sd.decode(good())
    assert [sd.kind(s) for s in d.steps] == ["text", "question", "field", "question", "end"]
    assert sd.remaining(d, "hello") == 2 and sd.remaining(d, "bye") == 0


def test_each_problem_is_named_by_its_place():
    d = good()
    d["steps"][3]["answers"][1]["next"] = "x"
    assert problems(d) == ['steps[3].answers[1].next: no step \'x\'']
    d = good()
    d["steps"][2]["id"] = "hello"
    assert problems(d)[0] == "steps[2].id: 'hello' is already the id of steps[0]"
    d = good()
    d["start"] = "nowhere"
    assert problems(d) == ["start: no step 'nowhere'"]
    d = good()
    d["steps"][0]["text"] = "Hi {{customer.password}}"
    assert problems(d) == ["steps[0].text: unknown placeholder {{customer.password}}"]
    d = good()
    d["steps"].append({"id": "lost", "kind": "end"})
    assert problems(d) == ["steps[5]: 'lost' cannot be reached from the start"]
    d = good()  # a loop with no way out
    d["steps"][1]["answers"] = [{"label": "Billing", "next": "order"}]
    d["steps"][3]["answers"] = [{"label": "No, again", "next": "why"}]
    d["steps"][4:] = [{"id": "bye", "kind": "end"}]
    d["steps"].insert(0, {"id": "first", "kind": "question", "text": "?", "answers": [
        {"label": "a", "next": "hello"}, {"label": "b", "next": "bye"}]})
    d["start"] = "first"
    assert problems(d) == ["steps[1]: 'hello' has no way to an end step", "steps[2]: 'why' has no way to an end step",
                           "steps[3]: 'order' has no way to an end step", "steps[4]: 'helped' has no way to an end step"]
    d = good()
    d["steps"][1]["answers"][0]["colour"] = "red"
    assert problems(d)[0].startswith("steps[1].answers[0]: Object contains unknown field `colour`")
    d = good()
    d["steps"][2]["kind"] = "script"
    assert problems(d)[0].startswith("steps[2].kind: Invalid value 'script'")
    d = good()
    d["steps"][0]["text"] = "x" * 4001
    assert problems(d)[0].startswith("steps[0].text: Expected `str` of length <= 4000")
    assert problems({"title": "t", "start": "a", "steps": [{"id": "a", "kind": "text", "text": "", "next": "a"}]}) == [
        'steps: no step of kind "end"']
    assert sd.decode(b'{"title":"t","start":"a","steps":[{"id":"a","kind":"end"}]}').start == "a"
    assert problems(b"{nope") == ["definition: not valid JSON"]


def test_the_walk_branches_goes_back_and_keeps_the_path():
    d = sd.decode(good())
    path: list[dict] = []

    def go(**kw):
        path.append(sd.apply(d, path, sd.Move(**kw), 1.0))
        return sd.position(d, path)

    assert go(step="hello") == ["hello", "why"]
    with pytest.raises(sd.StepError, match="answer"):
        go(step="why", answer=5)
    with pytest.raises(sd.StepError, match="not 'hello'"):
        go(step="hello")
    assert go(step="why", answer=0) == ["hello", "why", "order"]
    with pytest.raises(sd.StepError, match="required"):
        go(step="order", value="  ")
    assert go(step="order", back=True) == ["hello", "why"]
    assert go(step="why", answer=0)[-1] == "order"
    assert go(step="order", value="A-17")[-1] == "helped"
    assert go(step="helped", answer=0)[-1] == "bye"
    with pytest.raises(sd.StepError, match="end of the script"):
        go(step="bye")
    assert sd.fields_of(path) == {"order": "A-17"}
    assert [e.get("label") for e in path if "answer" in e] == ["Billing", "Billing", "Yes"]
    assert any(e.get("back") for e in path)


def test_placeholders_are_replaced_never_evaluated():
    text = "Hi {{customer.first_name}} {{ call.number }} {{data.x}}"
    assert sd.render(text, {"customer.first_name": "{{agent.name}}", "call.number": None}) == "Hi {{agent.name}}  "
