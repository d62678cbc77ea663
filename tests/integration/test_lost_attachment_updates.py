"""Attachment writes across processes (issue 22), over HTTP against the emulator: another
writer's read-modify-write of a collection that lands after this apply verified its own
(two applies at once) no longer drops this apply's entry silently. The end of the apply
reads each collection it wrote again and fails the change whose entry is gone."""

from __future__ import annotations

from pathlib import Path

from taxsync.wire import PatchCollectionRequest
from tests.conftest import Rule, Seen, StartEmulator
from tests.helpers import Api, env, flat, run_cli, write

NS = "production"
COLLECTION = "/v1/collections/col_products_v1"


def test_an_entry_another_writer_drops_after_the_apply_verified_it_fails_its_change(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    srv = emulator()
    root = tmp_path / "m"
    write(root, "products.yaml", flat("products", NS))
    write(root, "old.yaml", flat("old", NS))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    (root / "old.yaml").unlink()  # so the apply below has a delete after its attach
    attached = flat("products", NS).replace(
        "spec:\n", "spec:\n  appliedTo: [{collection: products}]\n", 1
    )
    write(root, "products.yaml", attached)
    reads: list[Seen] = []
    wrote: list[Seen] = []

    def another_apply_writes_after_the_read_back(request: Seen) -> bool:
        """B read the list before A wrote, and writes it back after A read its own write
        back: on the first request A sends after that read."""
        if len(reads) == 2 and not wrote:
            stale_list = PatchCollectionRequest(taxonomy_applications=[])
            srv.store.patch_collection(NS, "col_products_v1", stale_list)
            wrote.append(request)
        elif (request.method, request.path) == ("GET", COLLECTION):
            reads.append(request)  # A's read before its write, then its read back
        return False  # only watching

    srv.recorder.rules.append(Rule(another_apply_writes_after_the_read_back))

    result = run_cli("apply", str(root), "--prune", "--auto-approve", env=env(srv))

    assert wrote, "the other writer never wrote"
    assert result.code == 1, result.output
    failed = [line for line in result.err.splitlines() if "on products" in line]
    assert len(failed) == 1, result.err
    assert "FAILED" in failed[0]
    assert "no longer holds its entry" in failed[0]
    assert "another writer overwrote it" in failed[0]
    assert "one apply at a time per namespace" in failed[0]
    assert "old" not in Api(srv).names(NS)  # the rest of the apply went on
    found = Api(srv).call("GET", COLLECTION, NS)
    assert not found.get("taxonomy_applications")
    gets = [r for r in srv.requests if (r.method, r.path) == ("GET", COLLECTION)]
    assert len(gets) == 3  # read, read back, and one read again at the end


def test_a_replace_whose_re_pointed_entry_another_writer_drops_fails(
    tmp_path: Path, emulator: StartEmulator
) -> None:
    """A replace re-points each collection from the old taxonomy to the new one; another
    writer's stale list landing after that was read back is caught at the end too."""
    from tests.helpers import hierarchical

    srv = emulator()
    root = tmp_path / "m"
    applied = "spec:\n  appliedTo: [{collection: products}]\n"
    write(root, "products.yaml", flat("products", NS).replace("spec:\n", applied, 1))
    assert run_cli("apply", str(root), "--auto-approve", env=env(srv)).code == 0
    write(root, "products.yaml", hierarchical("products", NS).replace("spec:\n", applied, 1))
    reads: list[Seen] = []
    wrote: list[Seen] = []

    def another_writer_after_the_re_point(request: Seen) -> bool:
        if len(reads) == 2 and not wrote:
            stale_list = PatchCollectionRequest(taxonomy_applications=[])
            srv.store.patch_collection(NS, "col_products_v1", stale_list)
            wrote.append(request)
        elif (request.method, request.path) == ("GET", COLLECTION):
            reads.append(request)  # the re-point's read, then its read back
        return False

    srv.recorder.rules.append(Rule(another_writer_after_the_re_point))

    result = run_cli("apply", str(root), "--allow-replace", "--auto-approve", env=env(srv))

    assert wrote, "the other writer never wrote"
    assert result.code == 1, result.output
    assert "no longer applies the new taxonomy" in result.output, result.output
    assert "another writer overwrote it" in result.output
