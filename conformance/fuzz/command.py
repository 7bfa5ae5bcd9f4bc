"""``conformance fuzz``: its arguments and what it does. Nothing heavy is imported until
the command runs (hypothesis is needed then, and only then)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_BUDGET_S = 60.0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from conformance.cli import positive_seconds

    fuzz = sub.add_parser("fuzz", help="explore layer configurations on frameworks and write each "
                          "new divergence as a minimal spec")
    fuzz.add_argument("--framework", "-f", default="", help="comma-separated, e.g. torch,paddle,tf "
                      "(default: every installed framework)")
    fuzz.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS",
                      help="a third-party adapter class (repeatable)")
    fuzz.add_argument("--device", "-d", default="cpu", choices=("cpu", "gpu"))
    fuzz.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                      help=f"time for the search and the shrinking (default {DEFAULT_BUDGET_S:g})")
    fuzz.add_argument("--out", "-o", default="fuzz-findings", metavar="DIR",
                      help="folder for the spec files of the findings (default: fuzz-findings)")
    fuzz.add_argument("--seed", type=int, default=0, help="hypothesis's seed (default 0)")
    fuzz.add_argument("--expectations", default=None, help="folder of the expected-divergence "
                      "registry (default: ./expectations when it exists)")
    fuzz.add_argument("--specs", action="append", default=None, metavar="PATH",
                      help="the corpus whose registered cases tell which divergences are known "
                      "(default: ./specs when it exists)")
    fuzz.add_argument("--timeout", type=positive_seconds, default=60.0, metavar="SECONDS",
                      help="per-configuration time limit in each worker")
    fuzz.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    """Search, shrink, write; exit 1 when something new was found, 0 when not."""
    from conformance.cli import (
        EXIT_FINDINGS,
        EXIT_OK,
        UsageError,
        require_installed,
        select_frameworks,
        writable_folder,
    )

    if args.budget <= 0:
        raise UsageError(f"--budget {args.budget:g}: expected a number of seconds above 0")
    try:
        from conformance.fuzz.search import Search
    except ImportError as exc:
        raise UsageError(f"fuzzing needs hypothesis ({exc}); to install it: pip install hypothesis") from None
    from conformance.fuzz.lanes import Lanes
    from conformance.fuzz.write import summary_text, write_findings, write_summary

    refs = select_frameworks(args.framework, args.adapter)
    if args.framework or args.adapter:
        require_installed(refs)
    writable_folder(args.out)
    registry_dir = args.expectations or ("expectations" if Path("expectations").is_dir() else None)
    lanes = Lanes(refs, Path(registry_dir) if registry_dir else None, args.device, args.timeout)
    try:
        if lanes.problems and (args.framework or args.adapter):
            raise UsageError("named but cannot run: " + "; ".join(lanes.problems))
        for problem in lanes.problems:
            print(f"note: skipping {problem}", file=sys.stderr)
        if not lanes.ready:
            raise UsageError("no framework could run; nothing to fuzz")
        progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        registered, ran = lanes.registered(args.specs or ["specs"])
        if progress is not None:
            count = sum(len(v) for v in registered.values())
            progress(f"fuzz: {ran} registered corpus cases ran; their {count} divergences are not "
                     "reported again")
        search = Search(lanes, registered, args.budget, args.seed, progress)
        search.run()
        out = Path(args.out)
        written = write_findings(search, lanes, out, args.device)
        write_summary(search, lanes, written, out)
        print(summary_text(search, lanes, written, out), end="")
        return EXIT_FINDINGS if written else EXIT_OK
    finally:
        lanes.close()
