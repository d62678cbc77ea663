"""A local emulator of Mixpeek's taxonomy, namespace, collection, retriever and task API.

``EmulatorOptions`` holds every setting; ``create_app`` builds the ASGI app from them,
``serve`` runs it with uvicorn, ``local_transport`` runs it in process behind an httpx
transport, ``Store`` holds the state (in memory or in a shared JSON file), ``Faults``
injects latency, throttling, errors and lost connections, ``load_seed``/``Seed`` read the
collections and retrievers to start with, and ``TaskPolicy`` says how backfill tasks
progress and end.

Layout: ``app`` (what every request goes through), ``routes/`` (one module per
resource), ``bodies`` (reading requests), ``replies`` (error envelopes), ``store/`` (the
state by resource, and its file), ``resources``/``query``/``seed``/``faults`` (records,
paging and filters, seed files, fault injection), ``server`` (uvicorn and in process).
"""

from taxsync.emulator.app import EmulatorApp, create_app
from taxsync.emulator.errors import StateFileError, StoreError
from taxsync.emulator.faults import Faults
from taxsync.emulator.options import EmulatorOptions
from taxsync.emulator.resources import TaskPolicy
from taxsync.emulator.seed import Seed, SeedError, load_seed
from taxsync.emulator.server import LocalTransport, local_transport, make_server, serve
from taxsync.emulator.store import Store

__all__ = [
    "EmulatorApp",
    "EmulatorOptions",
    "Faults",
    "LocalTransport",
    "Seed",
    "SeedError",
    "StateFileError",
    "Store",
    "StoreError",
    "TaskPolicy",
    "create_app",
    "load_seed",
    "local_transport",
    "make_server",
    "serve",
]
