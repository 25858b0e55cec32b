"""A bare WebSocket client over a plain socket, able to send what no well-behaved
client would (bench/fuzz.py, tests/test_churn.py)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

# -- a bare WebSocket client (also used by tests/test_churn.py) ------------------------------


class RawSocket:
    """A WebSocket client on a bare TCP socket: stop reading at will, send anything."""

    def __init__(
        self,
        port: int,
        rcvbuf: int | None = None,
        timeout: float | None = None,
        path: str = "/api/sessions/ws",
    ) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"no upgrade: {head[:200]!r}")

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 65536:
            length = b"\xfe" + struct.pack(">H", n)
        else:
            length = b"\xff" + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode]) + length + mask + masked)

    def send_json(self, obj: Any) -> None:
        self.send(1, json.dumps(obj).encode())

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, BrokenPipeError):
                return False  # cut off without a close frame
            if not chunk:
                return False
            self.buf += chunk
        return True

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """(opcode, payload) until a close frame or the end (server frames are unmasked)."""
        while True:
            if not self._need(2):
                return
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            at = 2
            if n == 126:
                if not self._need(4):
                    return
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if not self._need(10):
                    return
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            if not self._need(at + n):
                return
            payload, self.buf = self.buf[at : at + n], self.buf[at + n :]
            yield op, payload
            if op == 8:
                return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
