"""Run spec cases on a Keras 3 backend adapter in a fresh process (``python keras3_probe.py
NAME`` with a JSON list of case texts on stdin) and print, as JSON, what each step observed,
the adapter's environment and which frameworks the process imported. The Keras adapters
choose their backend at import and keep the other frameworks out of their process, so the
tests never import them into pytest's own process."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from helpers import cases_from, run_of

from conformance.adapters import BUILTIN, load_class


def main() -> None:
    adapter = load_class(BUILTIN[sys.argv[1]].target)()
    results = []
    for text in json.load(sys.stdin):
        (case,) = cases_from(text)
        run = run_of(adapter, case)
        results.append({"status": run.status, "message": run.message,
                        "steps": [{k: [str(v.dtype), v.tolist()] for k, v in step.items()}
                                  for step in run.steps]})
    print(json.dumps({"results": results, "environment": adapter.environment("cpu"),
                      "version": adapter.version(),
                      "modules": [m for m in ("tensorflow", "torch", "jax") if sys.modules.get(m)]}))


if __name__ == "__main__":
    main()
