"""A local emulator of Mixpeek's taxonomy and namespace API.

``create_app`` builds the ASGI app, ``serve`` runs it with uvicorn, ``local_transport``
runs it in process behind an httpx transport, ``Store`` holds the state (in memory or in
a shared JSON file) and ``Faults`` injects latency, throttling, errors and lost
connections.
"""

from taxsync.emulator.app import EmulatorApp, create_app
from taxsync.emulator.errors import StateFileError, StoreError
from taxsync.emulator.faults import Faults
from taxsync.emulator.server import LocalTransport, local_transport, make_server, serve
from taxsync.emulator.store import Store

__all__ = [
    "EmulatorApp",
    "Faults",
    "LocalTransport",
    "StateFileError",
    "Store",
    "StoreError",
    "create_app",
    "local_transport",
    "make_server",
    "serve",
]
