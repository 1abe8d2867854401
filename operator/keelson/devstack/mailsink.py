"""A local SMTP sink for `keelson dev run`: accepts every message and writes it to a directory.

Run as ``python -m keelson.devstack.mailsink PORT DIR``. Uses aiosmtpd when it is installed
(a test dependency); otherwise a minimal asyncio SMTP server (HELO/EHLO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT), which is all the notifications service's smtplib client needs. Each message
is written as ``DIR/<timestamp>-<n>.eml``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

_counter = itertools.count(1)


def write_message(directory: Path, content: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.strftime('%Y%m%dT%H%M%S')}-{next(_counter):04d}.eml"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return path


class _Handler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        write_message(self.directory, envelope.original_content or envelope.content)
        return "250 OK"


async def _session(directory: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    async def reply(line: str) -> None:
        writer.write(f"{line}\r\n".encode())
        await writer.drain()

    await reply("220 keelson-mailsink ESMTP")
    try:
        while line := await reader.readline():
            command = line.decode(errors="replace").strip().upper()
            if command.startswith("EHLO"):
                await reply("250-keelson-mailsink\r\n250 8BITMIME")
            elif command.startswith("DATA"):
                await reply("354 end data with <CR><LF>.<CR><LF>")
                lines: list[bytes] = []
                while (data := await reader.readline()) and data.rstrip(b"\r\n") != b".":
                    lines.append(data[1:] if data.startswith(b"..") else data)
                write_message(directory, b"".join(lines))
                await reply("250 OK")
            elif command.startswith("QUIT"):
                await reply("221 bye")
                break
            elif command.split(" ")[0] in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                await reply("250 OK")
            else:
                await reply("502 command not implemented")
    finally:
        writer.close()


async def _serve_minimal(port: int, directory: Path) -> None:
    server = await asyncio.start_server(lambda r, w: _session(directory, r, w), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def serve(port: int, directory: Path) -> None:
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print(f"mailsink: minimal SMTP server on 127.0.0.1:{port}, mail in {directory}", flush=True)
        asyncio.run(_serve_minimal(port, directory))
        return
    controller = Controller(_Handler(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"mailsink: aiosmtpd on 127.0.0.1:{port}, mail in {directory}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m keelson.devstack.mailsink PORT DIR", file=sys.stderr)
        return 2
    serve(int(args[0]), Path(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
