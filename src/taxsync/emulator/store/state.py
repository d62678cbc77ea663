"""The emulator's data and its indexes (``State``, with a ``Catalog`` each for
collections and retrievers), and the state file's JSON format."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from taxsync import safe_read
from taxsync.emulator.errors import AlreadyExists, NotFound, StateFileError
from taxsync.emulator.resources import new_task_id
from taxsync.emulator.store.times import bumped

STATE_FORMAT = "taxsync-emulator-state/1"

_JSON_SEPARATORS = (",", ":")
# Far above any state a test or demo builds, far below what would exhaust memory.
MAX_STATE_BYTES = 512 * 1024 * 1024


class State:
    """The data plus the indexes rebuilt from it; ``encode`` caches per-taxonomy JSON."""

    def __init__(self) -> None:
        self.generation = 0
        self.seq = 0
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.ns_by_name: dict[str, str] = {}
        self.taxonomies: dict[str, dict[str, dict[str, Any]]] = {}
        self.tax_by_name: dict[str, dict[str, str]] = {}
        self.tax_namespace: dict[str, str] = {}
        self.collections = Catalog("collection", "collection_id", "collection_name")
        self.retrievers = Catalog("retriever", "retriever_id", "retriever_name")
        # Tasks are organisation-wide, in creation order.
        self.tasks: dict[str, dict[str, Any]] = {}
        # Encoded JSON of each taxonomy, in creation order, and the ids whose JSON is stale:
        # a save re-encodes only what changed, then joins the bytes in one C call.
        self._fragments: dict[str, bytes] = {}
        self._stale: set[str] = set()

    @classmethod
    def load(cls, path: Path) -> State:
        """Parse a state file; any problem is a StateFileError naming the file."""
        try:
            raw = safe_read.read_regular(path, MAX_STATE_BYTES)
            safe_read.check_json_depth(raw, path)
        except safe_read.FileRefused as refused:
            raise StateFileError(
                f"emulator state file {refused}; move it aside or delete it to start afresh"
            ) from None
        try:
            data = json.loads(raw)
            return cls._from_json(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StateFileError(
                f"emulator state file {path} is corrupt or not a taxsync state file "
                f"({type(exc).__name__}: {exc}); move it aside or delete it to start afresh"
            ) from exc

    @classmethod
    def _from_json(cls, data: Any) -> State:
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise ValueError(f"expected a JSON object with format {STATE_FORMAT!r}")
        state = cls()
        state.generation = int(data["generation"])
        state.seq = int(data["seq"])
        for ns in data["namespaces"]:
            state.add_namespace(dict(ns, seq=int(ns["seq"])))
        for entry in data["taxonomies"]:
            entry["seq"] = int(entry["seq"])
            if entry["namespace_id"] not in state.namespaces or not entry["versions"]:
                raise ValueError(f"taxonomy {entry.get('taxonomy_id')!r} is inconsistent")
            state.add_taxonomy(entry)
        # Files written before collections, retrievers and tasks existed have none.
        for catalog, key in ((state.collections, "collections"), (state.retrievers, "retrievers")):
            for record in data.get(key, []):
                if record["namespace_id"] not in state.namespaces:
                    raise ValueError(
                        f"{catalog.kind} {record['data'].get(catalog.id_key)!r} is inconsistent"
                    )
                catalog.add(dict(record, seq=int(record["seq"])))
        for task in data.get("tasks", []):
            state.tasks[task["data"]["task_id"]] = dict(task, seq=int(task["seq"]))
        return state

    def encode(self) -> bytes:
        """The whole state as JSON, the generation first so it can be read cheaply."""
        for tax_id in self._stale:
            entry = self.taxonomies[self.tax_namespace[tax_id]][tax_id]
            self._fragments[tax_id] = _dumps(entry).encode("utf-8")
        self._stale.clear()
        head = (
            f'{{"generation":{self.generation},"format":{_dumps(STATE_FORMAT)},'
            f'"seq":{self.seq},"namespaces":{_dumps(list(self.namespaces.values()))},'
            '"taxonomies":['
        )
        tail = (
            f'],"collections":{_dumps(self.collections.records())},'
            f'"retrievers":{_dumps(self.retrievers.records())},'
            f'"tasks":{_dumps(list(self.tasks.values()))}}}'
        )
        return b"".join(
            (head.encode("utf-8"), b",".join(self._fragments.values()), tail.encode("utf-8"))
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def new_taxonomy_id(self) -> str:
        while True:
            candidate = "tax_" + secrets.token_hex(8)
            if candidate not in self.tax_namespace:
                return candidate

    def new_task_id(self) -> str:
        while True:
            candidate = new_task_id()
            if candidate not in self.tasks:
                return candidate

    def new_namespace_id(self) -> str:
        while True:
            candidate = "ns_" + secrets.token_hex(8)
            if candidate not in self.namespaces:
                return candidate

    def add_namespace(self, record: dict[str, Any]) -> None:
        self.namespaces[record["namespace_id"]] = record
        self.ns_by_name[record["namespace_name"]] = record["namespace_id"]
        self.taxonomies.setdefault(record["namespace_id"], {})
        self.tax_by_name.setdefault(record["namespace_id"], {})
        self.collections.add_namespace(record["namespace_id"])
        self.retrievers.add_namespace(record["namespace_id"])

    def namespace_by_name(self, name: str) -> dict[str, Any] | None:
        ns_id = self.ns_by_name.get(name)
        return self.namespaces[ns_id] if ns_id is not None else None

    def find_namespace(self, ident: str) -> dict[str, Any] | None:
        return self.namespaces.get(ident) or self.namespace_by_name(ident)

    def add_taxonomy(self, entry: dict[str, Any]) -> None:
        ns_id, tax_id = entry["namespace_id"], entry["taxonomy_id"]
        self.taxonomies[ns_id][tax_id] = entry
        self.tax_by_name[ns_id][entry["taxonomy_name"]] = tax_id
        self.tax_namespace[tax_id] = ns_id
        self._fragments[tax_id] = b""
        self._stale.add(tax_id)

    def remove_taxonomy(self, entry: dict[str, Any]) -> None:
        ns_id, tax_id = entry["namespace_id"], entry["taxonomy_id"]
        del self.taxonomies[ns_id][tax_id]
        del self.tax_by_name[ns_id][entry["taxonomy_name"]]
        del self.tax_namespace[tax_id]
        del self._fragments[tax_id]
        self._stale.discard(tax_id)

    def rename_taxonomy(self, entry: dict[str, Any], new_name: str) -> None:
        names = self.tax_by_name[entry["namespace_id"]]
        del names[entry["taxonomy_name"]]
        names[new_name] = entry["taxonomy_id"]
        entry["taxonomy_name"] = new_name

    def touch(self, tax_id: str) -> None:
        """Mark a taxonomy changed so its cached JSON is re-encoded."""
        self._stale.add(tax_id)

    def taxonomy_id_by_name(self, ns_id: str, name: str) -> str | None:
        return self.tax_by_name[ns_id].get(name)

    def find_taxonomy(self, ns_id: str, ident: str, *, by_name: bool) -> dict[str, Any] | None:
        per_ns = self.taxonomies[ns_id]
        entry = per_ns.get(ident)
        if entry is None and by_name:
            tax_id = self.tax_by_name[ns_id].get(ident)
            entry = per_ns.get(tax_id) if tax_id is not None else None
        return entry

    def taxonomies_in(self, ns_id: str) -> Iterable[dict[str, Any]]:
        return self.taxonomies[ns_id].values()

    def taxonomy_count(self) -> int:
        return len(self.tax_namespace)

    # --- look-ups that fail as the API does ------------------------------------------

    def namespace_id(self, ident: str) -> str:
        """The id of the namespace with that name or id; NotFound otherwise."""
        found = self.find_namespace(ident)
        if found is None:
            raise NotFound(f"Namespace '{ident}' not found", {"resource": "namespace", "id": ident})
        return str(found["namespace_id"])

    def taxonomy(self, ns: str, ident: str, *, by_name: bool = True) -> dict[str, Any]:
        """A taxonomy of namespace ``ns`` (name or id) by id, or by name too; NotFound
        otherwise."""
        ns_id = self.namespace_id(ns)
        entry = self.find_taxonomy(ns_id, ident, by_name=by_name)
        if entry is None:
            ns_name = self.namespaces[ns_id]["namespace_name"]
            raise NotFound(
                f"Taxonomy '{ident}' not found in namespace '{ns_name}'",
                {"resource": "taxonomy", "id": ident},
            )
        return entry

    def not_found(self, kind: str, ns_id: str, ident: str) -> NotFound:
        """The NotFound for a ``kind`` (``Collection``, ``Retriever``) missing in a namespace."""
        ns_name = self.namespaces[ns_id]["namespace_name"]
        return NotFound(
            f"{kind} '{ident}' not found in namespace '{ns_name}'",
            {"resource": kind.lower(), "id": ident},
        )

    def next_task_time(self, now: float) -> str:
        """``created_at`` for a new task: strictly after the previous task's, so sorting
        tasks by created_at is their order."""
        last = next(reversed(self.tasks.values()), None)
        return bumped(last["data"]["created_at"] if last else None, now)


class Catalog:
    """Records of one kind (collections or retrievers) per namespace, by id and by name.

    Each namespace's records stay in creation (seq) order, which keyset paging needs.
    """

    def __init__(self, kind: str, id_key: str, name_key: str) -> None:
        self.kind, self.id_key, self.name_key = kind, id_key, name_key
        self._by_id: dict[str, dict[str, dict[str, Any]]] = {}
        self._by_name: dict[str, dict[str, str]] = {}

    def add_namespace(self, ns_id: str) -> None:
        self._by_id.setdefault(ns_id, {})
        self._by_name.setdefault(ns_id, {})

    def add(self, record: dict[str, Any]) -> None:
        ns_id, data = record["namespace_id"], record["data"]
        self._by_id[ns_id][data[self.id_key]] = record
        self._by_name[ns_id][data[self.name_key]] = data[self.id_key]

    def replace(self, old: dict[str, Any], data: dict[str, Any]) -> None:
        """Give a record new data in place (same seq, same position)."""
        del self._by_name[old["namespace_id"]][old["data"][self.name_key]]
        old["data"] = data
        self._by_name[old["namespace_id"]][data[self.name_key]] = data[self.id_key]

    def rename(self, record: dict[str, Any], new_name: str) -> None:
        """Change a record's name; AlreadyExists if another record has it."""
        names = self._by_name[record["namespace_id"]]
        ident, old_name = record["data"][self.id_key], record["data"][self.name_key]
        if names.get(new_name, ident) != ident:
            raise AlreadyExists(
                f"A {self.kind} named '{new_name}' already exists in this namespace",
                {"resource": self.kind, self.name_key: new_name},
            )
        del names[old_name]
        names[new_name] = ident
        record["data"][self.name_key] = new_name

    def by_id(self, ns_id: str, ident: str) -> dict[str, Any] | None:
        return self._by_id[ns_id].get(ident)

    def by_name(self, ns_id: str, name: str) -> dict[str, Any] | None:
        ident = self._by_name[ns_id].get(name)
        return self._by_id[ns_id][ident] if ident is not None else None

    def find(self, ns_id: str, ident: str) -> dict[str, Any] | None:
        """By id first, then by name (the API's resolution order is undocumented)."""
        return self.by_id(ns_id, ident) or self.by_name(ns_id, ident)

    def in_namespace(self, ns_id: str) -> Iterable[dict[str, Any]]:
        return self._by_id[ns_id].values()

    def records(self) -> list[dict[str, Any]]:
        return [record for per_ns in self._by_id.values() for record in per_ns.values()]


def state_file_error(path: Path, exc: OSError) -> StateFileError:
    return StateFileError(f"cannot read emulator state file {path}: {exc.strerror or exc}")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=_JSON_SEPARATORS, ensure_ascii=False, allow_nan=False)
