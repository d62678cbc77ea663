"""The state of one doctor run, shared by its steps and its clean-up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from taxsync.client import MixpeekClient
from taxsync.doctor.report import Check, DoctorReport, Status
from taxsync.errors import ConfigError

PROBE_PREFIX = "taxsync-doctor-"
PROBE_MARKER = "taxsync_doctor"
UNKNOWN_KEY = "taxsync_doctor_unknown_key"


class Stopped(Exception):
    """Ctrl-C: stop probing, clean up."""


class NotConfirmed(ConfigError):
    """The namespace holds taxonomies taxsync manages and writing there was not agreed."""


class Abort(Exception):
    """A step the rest depends on failed (its check says how)."""


def probe_config(top_k: int, retriever_id: str, collection_id: str) -> dict[str, Any]:
    """The smallest flat config the contract accepts; ``top_k`` tells versions apart."""
    return {
        "taxonomy_type": "flat",
        "retriever_id": retriever_id,
        "top_k": top_k,
        "input_mappings": [{"input_key": "text", "source_type": "payload", "path": "title"}],
        "source_collection": {
            "collection_id": collection_id,
            "enrichment_fields": [{"field_path": "label", "merge_mode": "replace"}],
        },
    }


class ProbeState:
    """What one doctor run knows and holds: its client and namespace, the probes it made,
    the collections it found (to restore them), and its report."""

    def __init__(
        self,
        client: MixpeekClient,
        namespace: str,
        collections: Sequence[str],
        stop: asyncio.Event,
    ) -> None:
        self.client = client
        self.ns = namespace
        self.collections = list(collections)
        self.stop = stop
        name = PROBE_PREFIX + secrets.token_hex(4)
        self.names = (name, f"{name}-2")
        self.report = DoctorReport(namespace, name)
        self.ids: dict[str, str] = {}  # probe name -> id, as created
        self.extra_ids: list[str] = []  # a duplicate the server should have refused
        self.originals: dict[str, Any] = {}  # collection -> its applications as found
        self.restored: set[str] = set()
        # What this run wrote to, so the clean-up undoes exactly that and lists nothing else:
        self.sent: set[str] = set()  # probe names whose create was sent
        self.touched: set[str] = set()  # collections a PATCH was sent to
        # Set by a third interrupt: the clean-up stops and lists what it did not undo.
        self.abort = asyncio.Event()
        self.versions_made = False
        self.retriever_id = "ret_taxsync_doctor"
        self.collection_id = "col_taxsync_doctor"
        self.created_at: str | None = None

    def check_stop(self) -> None:
        """Ctrl-C between two steps stops the probe (the clean-up still runs)."""
        if self.stop.is_set():
            raise Stopped

    def record(
        self, check: str, what: str, status: Status, observed: str = "", consequence: str = ""
    ) -> None:
        self.report.checks.append(Check(check, what, status, observed, consequence))

    def config(self, top_k: int) -> dict[str, Any]:
        return probe_config(top_k, self.retriever_id, self.collection_id)

    @property
    def probe_id(self) -> str:
        return self.ids[self.names[0]]
