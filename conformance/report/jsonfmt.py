"""The merged data as JSON, schema ``conformance.report/1``::

    {schema, kit_version, summary: {verdict: cells, unexpected, missing},
     matrix: {case id: {column label: verdict}},       # the table at a glance
     columns: [{label, framework, framework_version, device, environment, documented,
                sources: [files], cases: [result entries as in the results files]}],
     notes: [...]}

``conformance report`` reads such a file back as input, so merged reports merge again.
"""

from __future__ import annotations

import json
from typing import Any

from conformance import __version__
from conformance.report.findings import counts
from conformance.report.merge import REPORT_SCHEMA, Matrix


def as_data(matrix: Matrix) -> dict[str, Any]:
    """The report as plain data (cases in first-seen order in every column)."""
    return {
        "schema": REPORT_SCHEMA,
        "kit_version": __version__,
        "summary": counts(matrix),
        "matrix": {case_id: {col.label: (col.cases[case_id]["verdict"] if case_id in col.cases else None)
                             for col in matrix.columns} for case_id in matrix.case_ids},
        "columns": [{**col.header(), "cases": [col.cases[c] for c in matrix.case_ids if c in col.cases]}
                    for col in matrix.columns],
        "notes": list(matrix.notes),
    }


def render(matrix: Matrix) -> str:
    return json.dumps(as_data(matrix), indent=1, sort_keys=True) + "\n"
