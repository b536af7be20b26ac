"""A TCP proxy between clients and redis-server that can lose the reply to one transaction.

Armed with a marker, it forwards the first client write that contains ``EXEC`` and the marker to Redis,
lets Redis apply it, then closes that client's connection without forwarding the reply: the
"Redis applied it, the reply never arrived" fault.
"""

from __future__ import annotations

import socket
import threading
import time


class RedisProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._markers: tuple[bytes, ...] | None = None
        self._command = b"EXEC"
        self.dropped = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="redis-proxy").start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def drop_reply_once(self, *markers: bytes, command: bytes = b"EXEC") -> None:
        """Lose the reply to the next client write that holds ``command`` and every one of ``markers``."""
        with self._lock:
            self._markers, self._command = markers, command

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            cut = threading.Event()
            threading.Thread(target=self._pump_requests, args=(client, upstream, cut), daemon=True).start()
            threading.Thread(target=self._pump_replies, args=(upstream, client, cut), daemon=True).start()

    def _pump_requests(self, client: socket.socket, upstream: socket.socket, cut: threading.Event) -> None:
        # A client may send one write in several pieces (redis-py sends long arguments on their own): the
        # markers are looked for in the pieces since the last one that held the command.
        recent = b""
        try:
            while data := client.recv(65536):
                recent = (recent + data)[-262144:]
                with self._lock:
                    if self._markers is not None and self._command in data \
                            and all(marker in recent for marker in self._markers):
                        self._markers = None
                        cut.set()
                if self._command in data:
                    recent = b""  # that write ended: the next one is looked at on its own
                upstream.sendall(data)
                if cut.is_set():
                    return  # the reply pump swallows Redis's answer, then closes both sides
        except OSError:
            pass
        _close(client, upstream)

    def _pump_replies(self, upstream: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while data := upstream.recv(65536):
                if cut.is_set():
                    # Redis has answered, so it applied the write; the client never hears of it.
                    time.sleep(0.05)
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        _close(client, upstream)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
