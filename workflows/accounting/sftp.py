"""Putting a batch's files on the tenant's SFTP server (asyncssh): the server's host key must be
the pinned one; each file is written under a temporary name (``.NAME.part``) and renamed to its
final name once complete (POSIX rename, which replaces), so a crash or a retry never leaves half a
file under a final name or a second copy. A final name already there with the same size is a file
an earlier attempt delivered before it could record so: it is left as it is."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import asyncssh

__all__ = ["HostKeyMismatch", "upload"]


class HostKeyMismatch(Exception):
    """The server did not show the pinned host key: nothing was sent."""


async def upload(*, host: str, port: int, username: str, password: str, private_key: str, directory: str,
                 host_key: str, files: Sequence[tuple[str, bytes]], timeout: float = 30) -> list[str]:
    pattern = host if port == 22 else f"[{host}]:{port}"
    known = asyncssh.import_known_hosts(f"{pattern} {host_key.strip()}\n")
    keys = [asyncssh.import_private_key(private_key)] if private_key else []
    try:
        conn = await asyncssh.connect(host, port=port, username=username, password=password or None,
                                      client_keys=keys, known_hosts=known, agent_path=None,
                                      connect_timeout=timeout, login_timeout=timeout)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise HostKeyMismatch(f"the server at {host}:{port} did not show the pinned host key ({exc})") from None
    done: list[str] = []
    async with conn, conn.start_sftp_client() as sftp:
        for name, data in files:
            final = posixpath.join(directory, name)
            if await sftp.exists(final) and (await sftp.stat(final)).size == len(data):
                done.append(final)
                continue
            part = posixpath.join(directory, f".{name}.part")
            async with sftp.open(part, "wb") as f:
                await f.write(data)
            await sftp.posix_rename(part, final)
            done.append(final)
    return done
