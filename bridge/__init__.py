"""SIP gateway (pjsua2): trunks, inbound and outbound calls bridged to WebRTC legs.

Arrives with the SIP gateway capability; nothing here yet.
"""
