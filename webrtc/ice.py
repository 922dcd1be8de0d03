"""ICE configuration and in-place ICE restart for aiortc peer connections.

aiortc 1.16 gathers host candidates only when `iceServers` is an empty list
(`None` means its default, a public Google STUN server): see
`RTCIceGatherer.__init__` and `connection_kwargs`. We always pass a list.

aiortc also has no ICE restart: a second offer with new ICE credentials is
applied to a transport that keeps the old ones, so the browser's checks
(signed with the new ufrag/password) are refused. RFC 8445 section 9 and
RFC 8839 section 4.4.1.1.1 ask both sides to change credentials and keep
the DTLS association. `restart_local_credentials` and `adopt_remote_credentials`
do exactly that on the aioice connection under the transport, which keeps
answering and nominating checks after completion (triggered checks, RFC 8445
section 7.3.1.4), so the peer connection, its DTLS session and its tracks stay.
They reach into private attributes of aiortc/aioice, pinned by the tests.
"""

from __future__ import annotations

import secrets
import string

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, sdp

_ICE_CHARS = string.ascii_letters + string.digits + "+/"


def rtc_configuration(ice_servers: list[RTCIceServer] | None) -> RTCConfiguration:
    """A configuration that never falls back to aiortc's public STUN default."""
    return RTCConfiguration(iceServers=list(ice_servers or []))


def _random(n: int) -> str:
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(n))


def _ice_transports(pc: RTCPeerConnection) -> list:
    seen: dict[int, object] = {}
    for transceiver in pc.getTransceivers():
        transport = transceiver.receiver.transport.transport
        seen[id(transport)] = transport
    return list(seen.values())


def remote_ice_changed(pc: RTCPeerConnection, description: sdp.SessionDescription) -> bool:
    """Whether `description` (a new remote offer) carries ICE credentials other than the current ones."""
    current = pc.remoteDescription
    if current is None:
        return False
    before = sdp.SessionDescription.parse(current.sdp)
    old = {(m.ice.usernameFragment, m.ice.password) for m in before.media if m.ice}
    new = {(m.ice.usernameFragment, m.ice.password) for m in description.media if m.ice}
    return bool(new) and new != old


def restart_local_credentials(pc: RTCPeerConnection) -> None:
    """Give every ICE transport of `pc` a fresh local ufrag/password (the next SDP carries them)."""
    for transport in _ice_transports(pc):
        connection = transport._connection
        connection._local_username = _random(4)
        connection._local_password = _random(22)


def adopt_remote_credentials(pc: RTCPeerConnection, description: sdp.SessionDescription) -> None:
    """Make the running ICE transports check and answer with the remote side's new credentials.

    Call before `setRemoteDescription` so that the candidates of the new
    description are accepted again (end-of-candidates is reset).
    """
    media = next((m for m in description.media if m.ice and m.ice.usernameFragment), None)
    if media is None:
        return
    for transport in _ice_transports(pc):
        connection = transport._connection
        connection.remote_username = media.ice.usernameFragment
        connection.remote_password = media.ice.password
        connection._remote_candidates_end = False
        transport.iceGatherer._remote_candidates_end = False
