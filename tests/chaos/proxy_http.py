"""HTTP/1.1 framing for the fault proxy (tests/chaos/faultproxy.py): a
buffered connection that reads a request's or response's head and body
(Content-Length, chunked with its framing kept, or up to the close), closes
with a TCP RST when a fault asks for one, and the parsing of a head.
Standard library only.
"""

from __future__ import annotations

import asyncio
import socket
import struct

MAX_HEADER = 64 * 1024


class Closed(Exception):
    """The peer closed the connection."""


class Conn:
    """A buffered stream with the reads an HTTP/1.1 proxy needs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()

    async def _fill(self) -> None:
        data = await self.reader.read(65536)
        if not data:
            raise Closed()
        self.buf += data

    async def read_head(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                head = bytes(self.buf[: i + 4])
                del self.buf[: i + 4]
                return head
            if len(self.buf) > MAX_HEADER:
                raise Closed()
            await self._fill()

    async def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            await self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[: i + 2])
                del self.buf[: i + 2]
                return line
            await self._fill()

    async def read_until_close(self) -> bytes:
        while True:
            try:
                await self._fill()
            except Closed:
                out = bytes(self.buf)
                self.buf.clear()
                return out

    async def read_body(self, headers: dict[str, str], until_close: bool) -> bytes:
        """The raw body bytes (chunked framing kept as is)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                line = await self.read_line()
                out += line
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers up to the empty line.
                    while True:
                        t = await self.read_line()
                        out += t
                        if t == b"\r\n":
                            return bytes(out)
                out += await self.read_exact(size + 2)
        if "content-length" in headers:
            return await self.read_exact(int(headers["content-length"]))
        if until_close:
            return await self.read_until_close()
        return b""

    def reset(self) -> None:
        """Closes with a TCP RST."""
        sock = self.writer.get_extra_info("socket")
        try:
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.transport.abort()


def parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def dechunk(raw: bytes) -> bytes:
    out = bytearray()
    i = 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return bytes(out)
        size = int(raw[i:j].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        out += raw[j + 2 : j + 2 + size]
        i = j + 2 + size + 2
