"""The hub: Starlette app, websocket endpoint, wire protocol, agent states, ACD, boards, auth, bus."""
