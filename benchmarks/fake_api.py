"""A minimal Mixpeek API for measuring creates, independent of taxsync's own emulator.

Written from the API contract, not from taxsync: plain asyncio streams, HTTP/1.1 with
keep-alive, and only what an apply of new taxonomies asks (a namespace look-up, the three
lists, ``POST /v1/taxonomies``). Every answer waits ``--latency-ms`` first and costs almost
no CPU, so an apply measured against it shows taxsync's own time per create, not a server's.

    python benchmarks/fake_api.py --port 8765 --latency-ms 20

Prints ``listening`` once it accepts connections; runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from typing import Any

COLLECTIONS = ("col_catalog_categories", "col_employees", "col_managers", "col_executives")
RETRIEVERS = ("ret_clip_v1", "ret_face_matcher", "ret_exec_faces")
_ids = itertools.count(1)


def _page(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"results": results, "pagination": {"next_cursor": None}, "total_count": len(results)}


def answer(method: str, path: str, namespace: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for one request."""
    path = path.split("?", 1)[0]
    if method == "GET" and path.startswith("/v1/namespaces/"):
        name = path.rsplit("/", 1)[1]
        return 200, {"namespace_id": f"ns_{name}", "namespace_name": name}
    if method == "POST" and path == "/v1/taxonomies/list":
        return 200, _page([])
    if method == "POST" and path == "/v1/collections/list":
        found = [
            {"collection_id": c, "collection_name": c.removeprefix("col_"), "document_count": 1000}
            for c in COLLECTIONS
        ]
        return 200, _page(found)
    if method == "POST" and path == "/v1/retrievers/list":
        return 200, _page([{"retriever_id": r, "retriever_name": r} for r in RETRIEVERS])
    if method == "POST" and path == "/v1/taxonomies":
        sent = json.loads(body)
        made = {**sent, "taxonomy_id": f"tax_{next(_ids):08d}", "version": 1, "ready": True}
        return 200, {"namespace": namespace, **made}
    return 404, {"success": False, "status": 404, "error": {"message": f"no route {path}"}}


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            await asyncio.sleep(latency)
            status, payload = answer(method, path, headers.get("x-namespace", ""), body)
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\n"
                f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, latency_ms: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, latency_ms / 1000), "127.0.0.1", port
    )
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.latency_ms))
