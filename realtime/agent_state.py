"""The agent-state machine: pure, no I/O; time is passed in.

An agent is in exactly one of these states::

    logged-out ──login──▶ available ◀──────────────┐
                            │  ▲  ▲                  │
                        offer│  │cancel/reject       │ end / timeout
                            ▼  │  │                  │
                          ringing ──answer──▶ on-call ──hang-up──▶ wrap-up
                            paused(reason) ◀── pause / force

`transition()` is the one function that decides; the hub applies its result to
the live store and the history. Illegal moves raise `IllegalTransition` naming
the state and the action, so a caller can answer the client precisely.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class State(str, enum.Enum):
    LOGGED_OUT = "logged-out"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


class Action(str, enum.Enum):
    LOGIN = "login"
    GO_AVAILABLE = "go-available"
    PAUSE = "pause"
    LOGOUT = "logout"
    OFFER = "offer"
    OFFER_ENDED = "offer-ended"  # rejected, timed out or cancelled
    ANSWER = "answer"
    HANG_UP = "hang-up"
    END_WRAP_UP = "end-wrap-up"
    EXTEND_WRAP_UP = "extend-wrap-up"
    WRAP_UP_TIMEOUT = "wrap-up-timeout"


class IllegalTransition(Exception):
    """The action is not allowed in the agent's current state."""

    def __init__(self, state: State, action: Action, detail: str = "") -> None:
        self.state = state
        self.action = action
        msg = f"cannot {action.value} while {state.value}"
        super().__init__(f"{msg}: {detail}" if detail else msg)


@dataclass(frozen=True, slots=True)
class AgentState:
    # The state the agent is in.
    state: State = State.LOGGED_OUT
    # Pause reason code while paused; None otherwise.
    reason: str | None = None
    # When the current state began (epoch seconds).
    since: float = 0.0
    # When wrap-up ends by itself (epoch seconds); None outside wrap-up.
    wrap_up_until: float | None = None
    # Contact the agent is ringing for, talking to or wrapping up.
    contact_id: str | None = None
    # Bumped on every change; the live store compares it to refuse lost updates.
    version: int = 0


# Which actions each state admits. A supervisor's force is the same table:
# forcing an agent out of a call would drop a customer, so it is refused too.
_ALLOWED: dict[State, frozenset[Action]] = {
    State.LOGGED_OUT: frozenset({Action.LOGIN, Action.GO_AVAILABLE, Action.PAUSE}),
    State.AVAILABLE: frozenset({Action.PAUSE, Action.LOGOUT, Action.OFFER, Action.GO_AVAILABLE}),
    State.RINGING: frozenset({Action.OFFER_ENDED, Action.ANSWER}),
    State.ON_CALL: frozenset({Action.HANG_UP}),
    State.WRAP_UP: frozenset(
        {
            Action.END_WRAP_UP,
            Action.EXTEND_WRAP_UP,
            Action.WRAP_UP_TIMEOUT,
            Action.PAUSE,
            Action.LOGOUT,
            Action.GO_AVAILABLE,
        }
    ),
    State.PAUSED: frozenset({Action.GO_AVAILABLE, Action.PAUSE, Action.LOGOUT}),
}

MAX_WRAP_UP_EXTENSION = 3600.0


def allowed_actions(state: State) -> frozenset[Action]:
    return _ALLOWED[state]


def transition(
    current: AgentState,
    action: Action,
    now: float,
    *,
    reason: str | None = None,
    contact_id: str | None = None,
    wrap_up_seconds: float = 0.0,
) -> AgentState:
    """Return the state after `action` at `now`, or raise `IllegalTransition`.

    The caller persists the result and, when it has a `wrap_up_until`, calls
    `transition(..., Action.WRAP_UP_TIMEOUT, now)` once that time has come
    (`next_deadline()` tells when); a timeout that arrives after the agent
    already left wrap-up raises, and the caller ignores it.
    """
    state = current.state
    if action not in _ALLOWED[state]:
        raise IllegalTransition(state, action)

    def to(new: State, **kw: object) -> AgentState:
        fields: dict[str, object] = dict(
            state=new, reason=None, since=now, wrap_up_until=None, contact_id=None
        )
        fields.update(kw)
        return replace(current, version=current.version + 1, **fields)  # type: ignore[arg-type]

    if action in (Action.LOGIN, Action.GO_AVAILABLE):
        if state is State.AVAILABLE:
            raise IllegalTransition(state, action, "already available")
        return to(State.AVAILABLE)
    if action is Action.PAUSE:
        if not reason:
            raise IllegalTransition(state, action, "a pause needs a reason")
        if state is State.PAUSED and current.reason == reason:
            raise IllegalTransition(state, action, f"already paused for {reason}")
        return to(State.PAUSED, reason=reason)
    if action is Action.LOGOUT:
        return to(State.LOGGED_OUT)
    if action is Action.OFFER:
        if not contact_id:
            raise IllegalTransition(state, action, "an offer needs a contact")
        return to(State.RINGING, contact_id=contact_id)
    if action is Action.OFFER_ENDED:
        if contact_id is not None and contact_id != current.contact_id:
            raise IllegalTransition(state, action, f"not ringing for {contact_id}")
        return to(State.AVAILABLE)
    if action is Action.ANSWER:
        if contact_id is not None and contact_id != current.contact_id:
            raise IllegalTransition(state, action, f"not ringing for {contact_id}")
        return to(State.ON_CALL, contact_id=current.contact_id)
    if action is Action.HANG_UP:
        if wrap_up_seconds < 0:
            raise IllegalTransition(state, action, "negative wrap-up time")
        if wrap_up_seconds == 0:
            return to(State.AVAILABLE)
        return to(State.WRAP_UP, wrap_up_until=now + wrap_up_seconds, contact_id=current.contact_id)
    if action is Action.EXTEND_WRAP_UP:
        if not 0 < wrap_up_seconds <= MAX_WRAP_UP_EXTENSION:
            raise IllegalTransition(
                state, action, f"an extension is 1..{int(MAX_WRAP_UP_EXTENSION)} seconds"
            )
        assert current.wrap_up_until is not None, "wrap-up without an end time"
        return replace(
            current,
            wrap_up_until=max(current.wrap_up_until, now) + wrap_up_seconds,
            version=current.version + 1,
        )
    if action is Action.END_WRAP_UP:
        return to(State.AVAILABLE)
    if action is Action.WRAP_UP_TIMEOUT:
        assert current.wrap_up_until is not None, "wrap-up without an end time"
        if now < current.wrap_up_until:
            raise IllegalTransition(state, action, "wrap-up time has not run out")
        return to(State.AVAILABLE)
    raise AssertionError(f"unhandled action {action}")  # pragma: no cover


def next_deadline(agent: AgentState) -> float | None:
    """When this agent's state changes by itself, if ever."""
    return agent.wrap_up_until if agent.state is State.WRAP_UP else None


# What an agent may ask for itself, and what a supervisor may force, by the
# target state named on the wire.
TARGETS: dict[str, Action] = {
    State.AVAILABLE.value: Action.GO_AVAILABLE,
    State.PAUSED.value: Action.PAUSE,
    State.LOGGED_OUT.value: Action.LOGOUT,
}


def action_for_target(current: AgentState, target: str) -> Action:
    """Map a requested target state to the action that reaches it."""
    action = TARGETS.get(target)
    if action is None:
        raise ValueError(f"unknown target state {target!r}")
    if action is Action.GO_AVAILABLE and current.state is State.WRAP_UP:
        return Action.END_WRAP_UP
    if action is Action.GO_AVAILABLE and current.state is State.LOGGED_OUT:
        return Action.LOGIN
    return action
