"""The specs the project relies on live in docs/specs/, kept in step with the shared specs beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "specs"


def test_docs_specs_are_the_shared_specs() -> None:
    if not SHARED.is_dir():
        pytest.skip(f"no shared specs beside the repository ({SHARED})")
    ours = {p.name: p.read_bytes() for p in (REPO / "docs" / "specs").glob("*.md")}
    theirs = {p.name: p.read_bytes() for p in SHARED.glob("*.md")}
    assert sorted(ours) == sorted(theirs)
    stale = [name for name in theirs if ours[name] != theirs[name]]
    assert not stale, f"docs/specs/ is behind the shared specs: copy {stale} from {SHARED}"
