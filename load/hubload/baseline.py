"""The baseline: a bare Starlette websocket server doing the minimal fan-out (`--bare-server PORT`)."""

from __future__ import annotations

from .common import MAX_FRAME


def bare_server(port: int) -> None:
    """The minimal fan-out: a frame from an agent goes as is to every board, and back to its sender.

    Same uvicorn settings as `realtime.cli serve`; no authentication, no state,
    no storage. A first frame naming the role stands in for `auth`.
    """
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    boards: set[WebSocket] = set()

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        is_board = False
        try:
            first = await ws.receive_text()
            is_board = '"board"' in first
            await ws.send_text('{"type":"welcome","ref":"1"}')
            if is_board:
                boards.add(ws)
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                text = msg.get("text")
                if text is None:
                    continue
                if text.startswith('{"type":"ping"'):
                    await ws.send_text('{"type":"pong"}')
                    continue
                for board in list(boards):
                    try:
                        await board.send_text(text)
                    except Exception:  # that board went away; its own handler cleans up
                        boards.discard(board)
                await ws.send_text(text)
        except Exception:  # the peer went away
            pass
        finally:
            boards.discard(ws)

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/ws", endpoint)])
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        log_level="warning",
        ws="websockets",
        ws_max_size=MAX_FRAME,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        lifespan="off",
        server_header=False,
    )
    uvicorn.Server(config).run()
