"""``conformance port``: translate a construction, list the measured residual differences,
optionally verify on the corpus (``--verify``), or run the model-level demo (``--demo``).

Imports nothing heavy at module level: ``conformance.cli`` registers it at start-up.
"""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLE = 'conformance port --from torch --to paddle "BatchNorm2d(64, momentum=0.1, eps=1e-5)"'


def add_port_parser(sub: Any) -> None:
    port = sub.add_parser(
        "port", help="translate BatchNorm/Dropout between torch, paddle and tf, with the measured "
        "differences no argument fixes", description=f"Example: {EXAMPLE}")
    port.add_argument("expression", nargs="?", help="one construction or functional call, e.g. "
                      "'BatchNorm2d(64, momentum=0.1)' or 'paddle.nn.Dropout(0.5, mode=\"downscale_in_infer\")'")
    port.add_argument("--from", dest="source", default=None, metavar="FRAMEWORK",
                      help="torch, paddle or tf (keras); inferred from the module path when omitted")
    port.add_argument("--to", dest="target", default="", metavar="FRAMEWORKS",
                      help="comma-separated targets (default: the other two)")
    port.add_argument("--rank", type=int, default=None, help="input rank where the source does not fix it "
                      "(Keras layers, BatchNorm1d with (N, C, L) inputs, functional forms)")
    port.add_argument("--features", type=int, default=None, help="channel count where the source does not "
                      "say it (Keras layers)")
    port.add_argument("--results", action="append", default=[], metavar="PATH",
                      help="read the facts from these results files or folders instead of running the probes")
    port.add_argument("--specs", default=None, help="the probe and corpus specs (default: ./specs)")
    port.add_argument("--no-measure", action="store_true",
                      help="translate only: run no framework, list no measured differences")
    port.add_argument("--verify", action="store_true",
                      help="run the corpus's cases for this layer on both frameworks with the translated "
                      "parameters and report what still differs")
    port.add_argument("--demo", action="store_true",
                      help="the model-level check: an MLP and a small CNN trained in each framework from "
                      "the same weights on scikit-learn's digits, correct translation against PyTorch's "
                      "momentum passed unchanged")
    port.add_argument("--frameworks", default="torch,paddle,tf", help="frameworks of --demo")
    port.add_argument("--steps", type=int, default=20, help="training steps of --demo (default 20)")


def cmd_port(args: argparse.Namespace) -> int:
    from conformance.cli import EXIT_FINDINGS, EXIT_OK, UsageError
    from conformance.port.parse import PortError

    try:
        if args.demo:
            from conformance.port import demo

            return demo.main([f.strip() for f in args.frameworks.split(",") if f.strip()], args.steps)
        if not args.expression:
            raise UsageError(f"expected a construction to translate, e.g. {EXAMPLE}; or --demo")
        unexpected = _port(args)
    except PortError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_FINDINGS if unexpected else EXIT_OK


def _port(args: argparse.Namespace) -> bool:
    from pathlib import Path

    from conformance.port import residuals as res
    from conformance.port.catalog import FRAMEWORKS, LABEL
    from conformance.port.measure import find_specs, measure
    from conformance.port.parse import PortError
    from conformance.port.translation import check_framework, port, translate_ported

    ported = port(args.expression, args.source, args.rank, args.features)
    names = [n.strip() for n in args.target.split(",") if n.strip()]
    targets = [check_framework(n, "--to") for n in names] or [f for f in FRAMEWORKS if f != ported.source]
    translations = [translate_ported(ported, t) for t in targets]
    for t in translations:
        print(t.text(), end="\n\n")
    if args.no_measure:
        print("Residual differences: not measured (--no-measure).")
        return False
    m = measure(ported, targets, args.results or None, args.specs)
    versions = ", ".join(f"{fw} {r.version}" for fw, r in m.runs.items() if r.version)
    print(f"Residual differences no argument fixes (facts: {m.origin or 'none'}; sizes: a small run of the "
          f"translated layer on {versions or 'no framework'}, cpu):")
    for problem in m.problems:
        print(f"  ! {problem}")
    for target in targets:
        found = res.residuals(ported, target, m)
        print(f"\n{LABEL[ported.source]} -> {LABEL[target]}: " + (f"{len(found)}" if found else "none measured"))
        for i, r in enumerate(found, 1):
            print(f"  {i}. {'WARNING: ' if r.warning else ''}{r.title}\n     measured: {r.facts}")
            for line in r.size:
                print(f"     size: {line}")
            if r.compensation:
                print(f"     compensate: {r.compensation}")
    if not args.verify:
        return False
    from conformance.adapters import resolve
    from conformance.port.verify import verify

    missing = [ref for ref in resolve([ported.source, *targets]) if not ref.installed()]
    if missing:
        raise PortError("--verify runs both frameworks; not installed: "
                        + "; ".join(f"{ref.name} ({ref.install_hint})" for ref in missing))
    specs = find_specs(args.specs)
    if specs is None:
        raise PortError("--verify needs the corpus: pass --specs DIR (the repository's specs/)")
    registry = "expectations" if Path("expectations").is_dir() else None
    unexpected = False
    for target in targets:
        text, bad = verify(ported, target, specs, registry)
        print("\n" + text)
        unexpected = unexpected or bad
    return unexpected
