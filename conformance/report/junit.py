"""The report as JUnit XML for CI dashboards: one ``testsuite`` per column, one
``testcase`` per case x column (``classname`` the column, ``name`` the case id).

A cell fails (``<failure>``) exactly when it is unexpected: a divergence or error that the
registry does not expect, or a stale registry entry. ``skipped`` and ``unsupported`` cells,
and cases that a column has no result for, are ``<skipped>``. Every other cell passes;
expected divergences and documented conventions say so in ``<system-out>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.report.findings import Finding, mark
from conformance.report.merge import Matrix, is_unexpected


def render(matrix: Matrix) -> str:
    root = ET.Element("testsuites", name="conformance")
    total = failures = skipped = 0
    for col in matrix.columns:
        suite = ET.SubElement(root, "testsuite", name=col.label)
        props = ET.SubElement(suite, "properties")
        for key, value in (("framework", col.framework), ("framework_version", col.framework_version),
                           ("device", col.device), ("device_name", str(col.environment.get("device_name", ""))),
                           ("sources", ", ".join(col.sources))):
            ET.SubElement(props, "property", name=key, value=value)
        counts = {"tests": 0, "failures": 0, "skipped": 0}
        for case_id in matrix.case_ids:
            counts["tests"] += 1
            entry = col.cases.get(case_id)
            case = ET.SubElement(suite, "testcase", classname=col.label, name=case_id,
                                 time=f"{float((entry or {}).get('duration_s', 0.0)):.6f}")
            if entry is None:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"no result for {col.label} in {', '.join(col.sources)}")
                continue
            if entry.get("file"):
                case.set("file", str(entry["file"]))
                case.set("line", str(entry.get("line", "")))
            finding = Finding(case_id, col, entry)
            details = _details(finding)
            if is_unexpected(entry):
                counts["failures"] += 1
                failure = ET.SubElement(case, "failure", type=mark(entry),
                                        message=str(entry.get("message", "")) or mark(entry))
                failure.text = details
            elif entry["verdict"] in ("skipped", "unsupported"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=f"{entry['verdict']}: {entry.get('message', '')}")
            elif entry["verdict"] not in ("conforms", "expected-error"):
                ET.SubElement(case, "system-out").text = details
        for key, count in counts.items():
            suite.set(key, str(count))
        suite.set("errors", "0")
        total, failures, skipped = total + counts["tests"], failures + counts["failures"], skipped + counts["skipped"]
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("skipped", str(skipped))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _details(finding: Finding) -> str:
    lines = [finding.title] + [f"{label}: {text}" for label, text in finding.facts()]
    code = finding.snippet()
    if code:
        lines += ["", f"reproduce with {finding.column.framework}:", code]
    return "\n".join(lines)
