"""The README's manifest is a manifest: it loads, into both namespaces it lists."""

from __future__ import annotations

import re
from pathlib import Path

from taxsync.manifest import load_tree

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_manifest_loads_into_each_namespace(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(apiVersion: taxsync/v1.*?)```", README.read_text(), re.S)
    assert block is not None, "the README's tour shows a manifest"
    (tmp_path / "m.yaml").write_text(block.group(1), encoding="utf-8")
    loaded = {t.namespace: t for t in load_tree(tmp_path, {})}
    assert sorted(loaded) == ["production", "staging"]
    assert loaded["production"].config["top_k"] == 3
    assert "top_k" not in loaded["staging"].config
    assert loaded["staging"].config["retriever_id"] == {"name": "clip"}
