"""junit.xml: one testcase per threshold plus one for the run's validity (for CI test-result views)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def render(summary: dict[str, Any]) -> str:
    cases = [
        {
            "name": "validity",
            "passed": summary["valid"],
            "message": "; ".join(summary["invalid_reasons"]) or "valid",
        }
    ] + [
        {
            "name": t["name"],
            "passed": t["passed"],
            "message": f"observed {t['observed']} against limit {t['limit']}"
            + (f" ({t['note']})" if t.get("note") else ""),
        }
        for t in summary["thresholds"]
    ]
    failures = sum(not c["passed"] for c in cases)
    suite = ET.Element(
        "testsuite",
        name=f"chatload.{summary['scenario'] or 'run'}",
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped="0",
        time=f"{summary['duration_s']:.3f}",
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="run_id", value=summary["run_id"])
    for case in cases:
        element = ET.SubElement(suite, "testcase", classname="chatload.thresholds", name=case["name"], time="0")
        if not case["passed"]:
            ET.SubElement(element, "failure", message=case["message"], type="threshold").text = case["message"]
        else:
            ET.SubElement(element, "system-out").text = case["message"]
    root = ET.Element("testsuites", name="chatload", tests=str(len(cases)), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
