"""uvicorn's HTTP/1.1 protocol (h11) with JSON answers to requests it cannot parse.

uvicorn answers a request it cannot parse (a malformed Content-Length, a bad request line ...) itself,
before the application sees it, with a plain-text 400. Every answer of this service is JSON, so this
subclass sends ``{"error": "malformed HTTP request", "detail": <what h11 said>}`` instead.
"""

from __future__ import annotations

import errno
import json
import socket
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from nodedrop_rq.errors import ListenFailed


class JsonErrorH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._protocol_error = ""
        next_event = self.conn.next_event

        def remembering_next_event() -> Any:
            # h11 keeps no record of why it refused the request; send_400_response needs it.
            try:
                return next_event()
            except h11.RemoteProtocolError as exc:
                self._protocol_error = str(exc)
                raise

        self.conn.next_event = remembering_next_event  # type: ignore[method-assign]

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": "malformed HTTP request", "detail": self._protocol_error or msg}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, as uvicorn would bind it; :class:`ListenFailed`
    with one line when the port is taken or the address is not ours."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise ListenFailed(f"cannot listen on {host}:{port}: unknown address ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ListenFailed(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock
