"""A webinar room's rules: roles, lock, promote, mute all, remove, questions, hands, attendance.

Pure: no clock, no I/O, no asyncio. Inputs are method calls carrying `now`;
a refused request raises `WebinarError` naming why; what the media worker
must do follows from `commands_out()` (drained by the caller). The hub
(realtime/webinars.py) keeps one `Webinar` per room, serialised with
`to_dict`/`from_dict` in the live store, and applies the commands.

Roles: the presenter (the trainer who started the room) publishes camera,
microphone and screen and moderates; a speaker is an attendee the presenter
promoted (publishes a microphone; everyone hears it); attendees receive only.
Guests (joined through an invitation link) are attendees without an account.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

PRESENTER = "presenter"
SPEAKER = "speaker"
ATTENDEE = "attendee"
ACTIONS = ("start", "promote", "demote", "mute-all", "unmute-all", "remove", "lock", "unlock", "answer", "end")
# What each role may publish (webrtc/webinar.py slots).
PUBLISH = {PRESENTER: ("camera", "audio", "screen"), SPEAKER: ("speaker",), ATTENDEE: ()}
MAX_QUESTIONS = 500
# A scheduled webinar opens (its audience may come in and wait) this long before its start.
OPEN_BEFORE = 10 * 60


class WebinarError(Exception):
    """A request the room refuses; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Member:
    id: str
    "'u<user id>' for a user, 'g<guest id>' for a guest."
    name: str
    role: str
    joined_at: float
    guest: bool = False
    hand_since: float | None = None
    "When the member raised a hand (None: lowered)."
    online: bool = True


@dataclass
class Question:
    id: int
    member: str
    name: str
    text: str
    asked_at: float
    answered: bool = False


@dataclass
class Visit:
    """One stay of a member in the room, for the training record."""

    member: str
    name: str
    joined_at: float
    left_at: float | None = None


@dataclass(frozen=True)
class Command:
    """Something the media worker must do: `mute` the speaker slot (on/off); `stop` a member's
    publishing connection (demoted); `drop` every connection of a member (removed); `end` the room."""

    op: str
    member: str | None = None
    on: bool | None = None


@dataclass
class Webinar:
    id: str
    title: str
    presenter: str
    "Member id of the presenter (the trainer who owns the room)."
    locked: bool = False
    speakers_muted: bool = False
    ended: bool = False
    starts_at: float = 0.0
    "When the webinar is scheduled to start (0: started at once)."
    started: bool = True
    "Whether the presenter started it (a scheduled one waits for the presenter at or after `starts_at`)."
    members: dict[str, Member] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    _out: list[Command] = field(default_factory=list)
    _ended_visits: list[Visit] = field(default_factory=list)

    # ------------------------------------------------------------ joining

    def join(self, member: str, name: str, now: float, guest: bool = False, invited: bool = True) -> Member:
        """A member enters (or comes back). Refused when the room ended, has not opened yet (a
        scheduled one opens OPEN_BEFORE its start), the member is not in its audience (`invited`),
        it is locked (except for the presenter and members already inside) or removed them."""
        if self.ended:
            raise WebinarError("conflict", "the webinar has ended")
        if member != self.presenter:
            if not invited:
                raise WebinarError("forbidden", "this webinar is for its invited audience only")
            if now < self.starts_at - OPEN_BEFORE:
                raise WebinarError("conflict", f"the webinar opens {OPEN_BEFORE // 60} minutes before its start")
        if member in self.removed:
            raise WebinarError("forbidden", "you were removed from this webinar")
        known = self.members.get(member)
        if self.locked and member != self.presenter and (known is None or not known.online):
            raise WebinarError("forbidden", "the webinar is locked; nobody else can join")
        if known is None:
            role = PRESENTER if member == self.presenter else ATTENDEE
            known = self.members[member] = Member(member, name, role, now, guest=guest)
        elif known.online:
            return known
        known.online = True
        self.visits.append(Visit(member, name, now))
        return known

    def leave(self, member: str, now: float) -> None:
        m = self.members.get(member)
        if m is None or not m.online:
            return
        m.online = False
        m.hand_since = None
        if m.role == SPEAKER:
            m.role = ATTENDEE
            self._out.append(Command("stop", member))
        self._close_visit(member, now)

    def _close_visit(self, member: str, now: float) -> None:
        for v in reversed(self.visits):
            if v.member == member and v.left_at is None:
                v.left_at = now
                self._ended_visits.append(v)
                return

    # ------------------------------------------------------------ what members may do

    def need_member(self, member: str) -> Member:
        m = self.members.get(member)
        if m is None or not m.online:
            raise WebinarError("not-found", "join the webinar first")
        return m

    def check_publish(self, member: str, slots: list[str]) -> None:
        """Refuses publishing by anyone but the presenter (camera, audio, screen) and speakers (speaker)."""
        m = self.need_member(member)
        if m.role == PRESENTER and not self.started:
            raise WebinarError("conflict", "start the webinar first (at or after its scheduled time)")
        allowed = PUBLISH[m.role]
        if not allowed:
            raise WebinarError("forbidden", "attendees receive only; the presenter can promote you to speak")
        bad = [s for s in slots if s not in allowed]
        if bad:
            raise WebinarError("forbidden", f"a {m.role} cannot publish {', '.join(bad)}")

    def ask(self, member: str, text: str, now: float) -> Question:
        m = self.need_member(member)
        if len(self.questions) >= MAX_QUESTIONS:
            raise WebinarError("conflict", "this webinar has too many questions already")
        q = Question(len(self.questions) + 1, member, m.name, text, now)
        self.questions.append(q)
        return q

    def hand(self, member: str, on: bool, now: float) -> None:
        m = self.need_member(member)
        m.hand_since = now if on else None

    # ------------------------------------------------------------ moderation

    def act(self, by: str, action: str, now: float, target: str | None = None, question: int | None = None) -> None:
        """A moderator action; only the presenter moderates."""
        if action not in ACTIONS:
            raise WebinarError("bad-frame", f"unknown action {action!r}")
        mod = self.need_member(by)
        if mod.role != PRESENTER:
            raise WebinarError("forbidden", f"only the presenter can {action.replace('-', ' ')}")
        match action:
            case "start":
                if self.started:
                    raise WebinarError("conflict", "the webinar has started already")
                if now < self.starts_at:
                    raise WebinarError("conflict", "the webinar cannot start before its scheduled time")
                self.started = True
            case "promote" | "demote" | "remove":
                t = self.members.get(target or "")
                if t is None or not t.online:
                    raise WebinarError("not-found", f"no attendee {target!r} in the webinar")
                if t.role == PRESENTER:
                    raise WebinarError("conflict", "the presenter cannot be promoted, demoted or removed")
                if action == "promote":
                    t.role, t.hand_since = SPEAKER, None
                elif action == "demote":
                    if t.role == SPEAKER:
                        t.role = ATTENDEE
                        self._out.append(Command("stop", t.id))
                else:
                    self.removed.append(t.id)
                    t.online, t.role, t.hand_since = False, ATTENDEE, None
                    self._close_visit(t.id, now)
                    self._out.append(Command("drop", t.id))
            case "mute-all" | "unmute-all":
                self.speakers_muted = action == "mute-all"
                self._out.append(Command("mute", on=self.speakers_muted))
            case "lock" | "unlock":
                self.locked = action == "lock"
            case "answer":
                q = next((q for q in self.questions if q.id == question), None)
                if q is None:
                    raise WebinarError("not-found", f"no question {question}")
                q.answered = True
            case "end":
                self.close(now)

    def close(self, now: float) -> None:
        """The webinar ends (the presenter ended it, or no media worker is left to carry it): every
        stay ends, and the worker drops the room."""
        self.ended = True
        for m in self.members.values():
            if m.online:
                m.online = False
                self._close_visit(m.id, now)
        self._out.append(Command("end"))

    def media_moved(self) -> None:
        """The room's media moved to another worker (the old one died): nobody publishes there yet, so
        promoted speakers publish again and the new worker learns the speakers' mute."""
        if self.speakers_muted:
            self._out.append(Command("mute", on=True))

    def commands_out(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def visits_out(self) -> list[Visit]:
        """Stays that ended since the last call (for the attendance record)."""
        out, self._ended_visits = self._ended_visits, []
        return out

    # ------------------------------------------------------------ views

    def online(self) -> list[Member]:
        return [m for m in self.members.values() if m.online]

    def attendees(self) -> int:
        """The live attendee count: everyone in the room but the presenter."""
        return sum(1 for m in self.members.values() if m.online and m.role != PRESENTER)

    def speakers(self) -> list[str]:
        return [m.id for m in self.members.values() if m.online and m.role == SPEAKER]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_out")
        d.pop("_ended_visits")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Webinar:
        w = cls(d["id"], d["title"], d["presenter"], d["locked"], d["speakers_muted"], d["ended"],
                d.get("starts_at", 0.0), d.get("started", True))
        w.members = {k: Member(**v) for k, v in d["members"].items()}
        w.removed = list(d["removed"])
        w.questions = [Question(**q) for q in d["questions"]]
        w.visits = [Visit(**v) for v in d["visits"]]
        return w
