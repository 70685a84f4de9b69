"""docs/security.md states how many hostile inputs the suite tries: count them, so the line stays true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def hostile_cases() -> list[str]:
    """Test cases collected from tests/adversarial/ (each parametrised input one case), less controls."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests/adversarial"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    assert proc.returncode == 0 and items, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [item for item in items if not re.search(r"[\[_]legit", item) and not item.startswith("tests/adversarial/test_security_doc.py")]


def test_security_doc_counts_every_hostile_input():
    doc = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    found = re.search(r"Hostile inputs tried by the suite: \*\*(\d+)\*\*", doc)
    assert found, "docs/security.md lost its count line"
    assert int(found.group(1)) == len(hostile_cases())
