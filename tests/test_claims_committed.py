"""The committed claims ledger regenerates byte for byte from the committed results (issue 15).

``results/claims/`` holds the ledger (claims.md, claims.html, figures/) and the files it is
computed from; ``maxbench claims report`` on that folder must write the same bytes. Skipped only
while no ledger has been committed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from maxbench.cli import app

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "results" / "claims"


@pytest.mark.skipif(not (LEDGER / "claims.md").is_file(), reason="no committed ledger yet")
def test_committed_ledger_regenerates_byte_for_byte(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        app, ["claims", "report", "--results", "results/claims", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    committed = sorted(
        p.relative_to(LEDGER)
        for p in [LEDGER / "claims.md", LEDGER / "claims.html", *LEDGER.glob("figures/*.png")]
    )
    written = sorted(
        p.relative_to(tmp_path)
        for p in [tmp_path / "claims.md", tmp_path / "claims.html", *tmp_path.glob("figures/*")]
    )
    assert written == committed
    for relative in committed:
        assert (tmp_path / relative).read_bytes() == (LEDGER / relative).read_bytes(), relative
