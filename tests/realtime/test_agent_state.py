import pytest

from realtime.agent_state import (
    Action,
    AgentState,
    IllegalTransition,
    State,
    action_for_target,
    next_deadline,
    transition,
)


def at(state: AgentState, action: Action, now: float, **kw) -> AgentState:
    return transition(state, action, now, **kw)


def test_login_makes_agent_available_and_bumps_version():
    s = at(AgentState(), Action.LOGIN, 10.0)
    assert (s.state, s.since, s.version) == (State.AVAILABLE, 10.0, 1)


def test_pause_needs_a_reason_and_records_it():
    s = at(AgentState(), Action.LOGIN, 1.0)
    with pytest.raises(IllegalTransition, match="needs a reason"):
        at(s, Action.PAUSE, 2.0)
    p = at(s, Action.PAUSE, 2.0, reason="lunch")
    assert (p.state, p.reason, p.since) == (State.PAUSED, "lunch", 2.0)


def test_changing_pause_reason_restarts_the_clock_but_same_reason_is_refused():
    p = at(at(AgentState(), Action.LOGIN, 1.0), Action.PAUSE, 2.0, reason="lunch")
    q = at(p, Action.PAUSE, 5.0, reason="break")
    assert (q.reason, q.since) == ("break", 5.0)
    with pytest.raises(IllegalTransition, match="already paused"):
        at(q, Action.PAUSE, 6.0, reason="break")


def test_full_call_cycle_with_timed_wrap_up():
    s = at(AgentState(), Action.LOGIN, 0.0)
    s = at(s, Action.OFFER, 1.0, contact_id="c1")
    assert (s.state, s.contact_id) == (State.RINGING, "c1")
    s = at(s, Action.ANSWER, 2.0, contact_id="c1")
    assert (s.state, s.contact_id) == (State.ON_CALL, "c1")
    s = at(s, Action.HANG_UP, 62.0, wrap_up_seconds=30)
    assert (s.state, s.wrap_up_until, next_deadline(s)) == (State.WRAP_UP, 92.0, 92.0)
    with pytest.raises(IllegalTransition, match="has not run out"):
        at(s, Action.WRAP_UP_TIMEOUT, 91.9)
    s = at(s, Action.WRAP_UP_TIMEOUT, 92.0)
    assert s.state is State.AVAILABLE and next_deadline(s) is None


def test_hang_up_without_wrap_up_time_goes_straight_to_available():
    s = at(at(at(AgentState(), Action.LOGIN, 0), Action.OFFER, 1, contact_id="c"), Action.ANSWER, 2)
    assert at(s, Action.HANG_UP, 3, wrap_up_seconds=0).state is State.AVAILABLE


def test_wrap_up_can_be_extended_and_ended_early():
    s = at(at(at(AgentState(), Action.LOGIN, 0), Action.OFFER, 1, contact_id="c"), Action.ANSWER, 2)
    s = at(s, Action.HANG_UP, 10, wrap_up_seconds=30)
    e = at(s, Action.EXTEND_WRAP_UP, 20, wrap_up_seconds=30)
    assert e.wrap_up_until == 70 and e.since == 10 and e.version == s.version + 1
    with pytest.raises(IllegalTransition, match="extension"):
        at(e, Action.EXTEND_WRAP_UP, 20, wrap_up_seconds=0)
    assert at(e, Action.END_WRAP_UP, 25).state is State.AVAILABLE


def test_offer_ending_returns_to_available_only_for_the_same_contact():
    s = at(at(AgentState(), Action.LOGIN, 0), Action.OFFER, 1, contact_id="c1")
    with pytest.raises(IllegalTransition, match="not ringing for c2"):
        at(s, Action.OFFER_ENDED, 2, contact_id="c2")
    assert at(s, Action.OFFER_ENDED, 2, contact_id="c1").state is State.AVAILABLE


@pytest.mark.parametrize(
    "state,action",
    [
        (State.LOGGED_OUT, Action.OFFER),
        (State.PAUSED, Action.OFFER),
        (State.RINGING, Action.PAUSE),
        (State.ON_CALL, Action.PAUSE),
        (State.ON_CALL, Action.LOGOUT),
        (State.ON_CALL, Action.GO_AVAILABLE),
        (State.WRAP_UP, Action.OFFER),
        (State.AVAILABLE, Action.ANSWER),
        (State.LOGGED_OUT, Action.HANG_UP),
    ],
)
def test_illegal_transitions_raise_naming_state_and_action(state, action):
    current = AgentState(state=state, since=0, contact_id="c", wrap_up_until=5 if state is State.WRAP_UP else None)
    with pytest.raises(IllegalTransition) as info:
        at(current, action, 1.0, reason="lunch", contact_id="c")
    assert info.value.state is state and info.value.action is action
    assert state.value in str(info.value) and action.value in str(info.value)


def test_available_twice_is_refused():
    with pytest.raises(IllegalTransition, match="already available"):
        at(at(AgentState(), Action.LOGIN, 0), Action.GO_AVAILABLE, 1)


def test_targets_map_to_the_action_that_reaches_them():
    assert action_for_target(AgentState(), "available") is Action.LOGIN
    assert action_for_target(AgentState(state=State.WRAP_UP, wrap_up_until=9), "available") is Action.END_WRAP_UP
    assert action_for_target(AgentState(state=State.PAUSED), "available") is Action.GO_AVAILABLE
    assert action_for_target(AgentState(state=State.AVAILABLE), "paused") is Action.PAUSE
    assert action_for_target(AgentState(state=State.AVAILABLE), "logged-out") is Action.LOGOUT
    with pytest.raises(ValueError, match="unknown target"):
        action_for_target(AgentState(), "on-call")
