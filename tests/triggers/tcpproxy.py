"""A TCP proxy on 127.0.0.1 that a test can cut and restore: "the broker goes down and comes
back" without touching the machine's shared broker. Clients connect to ``proxy.port``; the
proxy forwards to the real broker. ``cut()`` closes every open connection and refuses new
ones (the port stays bound, so clients see resets and refusals as on a real outage);
``restore()`` accepts again."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.connections = 0  # accepted while up, in all
        threading.Thread(target=self._accept, daemon=True, name="tcpproxy").start()

    # -- control ------------------------------------------------------------------------------
    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore``."""
        self._up.clear()
        self._drop_all()

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self._up.clear()
        self._drop_all()
        try:
            self._listener.close()
        except OSError:
            pass

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- forwarding -----------------------------------------------------------------------------
    def _drop_all(self) -> None:
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                # A reset, as a closed port would answer (SO_LINGER 0 sends RST on close).
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00"
                                  b"\x00\x00\x00\x00")
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


__all__ = ["TcpProxy"]
