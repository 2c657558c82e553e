"""A short schemathesis run (``make fuzz`` runs the long one): no 5xx and no answer
that breaks the published schema, with a valid key and with a wrong one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from loadtests.fuzz import main


def test_schemathesis_finds_no_server_error_or_schema_violation(tmp_path) -> None:
    assert main(["--examples", "15", "--out", str(tmp_path)]) == 0
    for name in ("valid-key.xml", "wrong-key.xml"):
        suite = ET.parse(tmp_path / name).getroot().find("testsuite")
        assert suite is not None and int(suite.get("tests", "0")) >= 9  # every /v1 operation
        assert suite.get("failures") == "0" and suite.get("errors") == "0"
