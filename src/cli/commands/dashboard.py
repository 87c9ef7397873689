"""``hpo dashboard [--port P] [--host H]``: optuna-dashboard on this project's study storage (its own
command line cannot open our per-study PostgreSQL journals), until Ctrl-C / SIGTERM.

Bound to 127.0.0.1 unless ``--host`` says otherwise: the dashboard has no authentication, and anyone
who reaches it can read, rename and delete studies.
"""

from __future__ import annotations

import argparse
import asyncio
import socketserver
import sys
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..adapters import home_directory, open_store
from ..exits import BadInput
from ..lifecycle import RunStopper

__all__ = ["cmd_dashboard", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per request (the page polls while a plot loads); threads end with the process."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per poll would flood the terminal


async def cmd_dashboard(args: argparse.Namespace, stopper: RunStopper, *, outage_s: float) -> dict[str, Any]:
    from optuna_dashboard import wsgi

    from src.mlops.persistence import create_optuna_storage

    stopper.context.update(command="dashboard")
    async with open_store(home_directory()) as store:
        storage = await asyncio.to_thread(create_optuna_storage, store.dsn, reconnect_timeout=outage_s)
        try:
            try:
                server = make_server(args.host, args.port, wsgi(storage), server_class=_Server,
                                     handler_class=_QuietHandler)
            except OSError as e:
                raise BadInput(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror or e})") from None
            host, port = server.server_address[:2]
            shown = f"[{host}]" if ":" in str(host) else host
            print(f"  dashboard: http://{shown}:{port}/dashboard  (Ctrl-C stops it)", flush=True)
            if args.host not in LOOPBACK:
                print(f"  warning: listening on {args.host}: the dashboard has no authentication; anyone who "
                      "reaches this port can read, rename and delete studies", file=sys.stderr, flush=True)
            thread = threading.Thread(target=server.serve_forever, name="hpo-dashboard", daemon=True)
            thread.start()
            try:
                await asyncio.Event().wait()  # until SIGINT/SIGTERM cancels the command
            finally:
                await asyncio.to_thread(server.shutdown)
                server.server_close()
        finally:
            await asyncio.to_thread(storage.close)
    return {"status": "completed"}  # pragma: no cover - the wait above ends only by a stop
