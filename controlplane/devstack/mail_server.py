"""A real SMTP server (aiosmtpd) that keeps every message it accepts in a `MailStore` and delivers nothing.

The dev stack runs it as a process when no SMTP_URL is configured; the tests run the same handler in a thread
(`serve_in_thread`). It takes any sender and any recipient, plain SMTP on loopback, no login.

    python -m controlplane.devstack.mail_server --host 127.0.0.1 --port 8025 --store .devstack/mail
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from controlplane.devstack.mail_store import MailStore

HOSTNAME = "controlplane-devstack"


class StoringHandler:
    """aiosmtpd's handler hook: DATA ends with the message written to the store (or a 451 if it cannot be)."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        try:
            mail_id = await asyncio.to_thread(self.store.save, envelope.mail_from, list(envelope.rcpt_tos), content)
        except OSError:
            logging.getLogger(__name__).exception("could not store a message")
            return "451 4.3.0 the message could not be stored"
        return f"250 2.0.0 stored as {mail_id}"


def smtp_options() -> dict[str, Any]:
    return {"enable_SMTPUTF8": True, "hostname": HOSTNAME}


def serve_in_thread(handler: Any, host: str, port: int) -> Any:
    """aiosmtpd's `Controller`, started: the server in a thread of this process (`.stop()` ends it)."""
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname=host, port=port, server_hostname=HOSTNAME, enable_SMTPUTF8=True)
    controller.start()
    return controller


async def serve(host: str, port: int, store: MailStore) -> None:
    from aiosmtpd.smtp import SMTP

    handler = StoringHandler(store)
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler, **smtp_options()), host, port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()
    # aiosmtpd logs each peer and, at debug level, each command (addresses): warnings only.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger(__name__).warning(
        "dev mail server on %s:%d, keeping messages in %s", args.host, args.port, args.store
    )
    asyncio.run(serve(args.host, args.port, MailStore(args.store)))


if __name__ == "__main__":
    main()
