"""``conformance`` command line: run, validate, list, conventions, report, frameworks.

Exit codes: 0 nothing unexpected; 1 an unexpected divergence, error or stale expectation;
2 bad usage or a bad spec.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from conformance import __version__
from conformance.adapters import (
    REAL_FRAMEWORKS,
    AdapterRef,
    UnknownFramework,
    from_target,
    registry,
    resolve,
)
from conformance.errors import SpecErrors
from conformance.interrupt import EXIT_INTERRUPTED  # stdlib only
from conformance.port.cli import add_port_parser, cmd_port

if TYPE_CHECKING:
    from conformance.model import Case

DEVICES = ("cpu", "gpu")
EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """An unknown command is refused in the kit's own words (argparse's wording of it
        changes between Python versions), with "did you mean"."""
        commands = self._commands()
        words = list(sys.argv[1:] if args is None else args)
        first = next((w for w in words if not w.startswith("-")), None)
        if commands and first is not None and first not in commands:
            close = difflib.get_close_matches(first, commands, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(f"unknown command {first!r}{hint}; expected one of {', '.join(commands)}")
        return super().parse_known_args(args, namespace)

    def _commands(self) -> list[str]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return list(action.choices)
        return []


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conformance", description="Cross-framework conformance kit for "
                     "BatchNorm and Dropout train/eval semantics.")
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run specs on frameworks and write results")
    run.add_argument("paths", nargs="*", default=["specs"], help="spec files or folders (default: specs)")
    run.add_argument("--framework", "-f", default="", help="comma-separated, e.g. torch,paddle,tf "
                     "(default: every installed framework)")
    run.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS",
                     help="a third-party adapter class (repeatable)")
    run.add_argument("--device", "-d", default="cpu", help="comma-separated: cpu, gpu (default: cpu)")
    run.add_argument("--out", "-o", default="results", help="folder for results files (default: results)")
    run.add_argument("--expectations", default=None, help="folder of the expected-divergence registry "
                     "(default: ./expectations when it exists)")
    run.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                     help="per-case time limit; a case past it is an error and its worker restarts")
    run.add_argument("--resume", action="store_true",
                     help="keep the cases an interrupted run already logged in --out and run the rest")
    run.add_argument("--quiet", "-q", action="store_true", help="no per-case progress")

    validate = sub.add_parser("validate", help="check spec files; exit 2 on the first bad one")
    validate.add_argument("paths", nargs="*", default=["specs"])

    lister = sub.add_parser("list", help="list the cases of the specs")
    lister.add_argument("paths", nargs="*", default=["specs"])
    lister.add_argument("--format", choices=("text", "json"), default="text")

    conventions = sub.add_parser("conventions", help="the conventions table measured by the probe cases")
    conventions.add_argument("paths", nargs="*", default=["results"], help="results files or folders")
    conventions.add_argument("--format", choices=("md", "json", "doc"), default="md",
                             help="doc: the whole conventions document (docs/conventions.md)")

    report = sub.add_parser("report", help="merge results files (from any machines) into one report")
    report.add_argument("paths", nargs="*", default=["results"],
                        help="results files or folders of them (default: results)")
    report.add_argument("--format", choices=("text", "md", "html", "json", "junit"), default="text")
    report.add_argument("--out", "-o", default=None, metavar="FILE", help="write here (default: stdout)")

    frameworks = sub.add_parser("frameworks", help="installed frameworks, versions and devices")
    frameworks.add_argument("--format", choices=("text", "json"), default="text")
    frameworks.add_argument("--no-devices", action="store_true",
                            help="versions only, without importing any framework (instant)")
    add_port_parser(sub)

    from conformance.fuzz.command import (
        add_parser as add_fuzz_parser,  # imports nothing heavy
    )

    add_fuzz_parser(sub)
    return parser


def console_main() -> NoReturn:
    """The ``conformance`` command and ``python -m conformance``: ``main``, then exit.

    Before exiting, the run's objects are moved out of the garbage collector's reach
    (``gc.freeze``): the collections Python makes while it shuts down walk every object
    the run created and every module it imported, which took 60-85 ms on the 2-core
    machine (about 5% of a whole Paddle run) and 15 ms without them. Nothing is lost: the
    files are closed and the standard streams are flushed as usual."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the resume command Ctrl-C prints
    try:
        return int(COMMANDS[args.command](args))
    except KeyboardInterrupt:  # outside a run's own handling (loading specs, say): nothing to keep
        print(f"\nconformance {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"conformance {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SpecErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} problem(s) in the specs; nothing was run.", file=sys.stderr)
        return EXIT_USAGE


def load_cases(paths: Sequence[str]) -> list[Case]:
    from conformance.spec import (
        load_paths,  # numpy, YAML and jsonschema: only when needed
    )

    cases, errors = load_paths(paths)
    if errors:
        raise SpecErrors(errors)
    if not cases:
        raise UsageError(f"no spec cases found under {', '.join(paths)}; expected .yaml spec files")
    return cases


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    for device in devices:
        if device not in DEVICES:
            close = difflib.get_close_matches(device, DEVICES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"unknown device {device!r}{hint}. Expected one of: {', '.join(DEVICES)}")
    return devices or ["cpu"]


def select_frameworks(names: str, adapters: Sequence[str]) -> list[AdapterRef]:
    try:
        refs = resolve(names) if names else []
        refs += [from_target(t) for t in adapters]
    except UnknownFramework as exc:
        raise UsageError(str(exc)) from None
    if not refs:
        refs = [r for r in resolve(list(REAL_FRAMEWORKS)) if r.installed()]
    if not refs:
        raise UsageError("no framework is installed. Install one, e.g. "
                         + "; ".join(r.install_hint for r in resolve(list(REAL_FRAMEWORKS))))
    return refs


def cmd_run(args: argparse.Namespace) -> int:
    from conformance.worker import (
        prestart,  # light: spawning comes before the heavy imports
    )

    refs = select_frameworks(args.framework, args.adapter)
    devices = parse_devices(args.device)
    # the frameworks import (most of a run's start) while the kit imports and the specs load
    fresh_out = not Path(args.out).exists()
    workers = prestart(refs, args.timeout, Path(args.out) / "logs")

    from conformance import interrupt
    from conformance.report.progress import live_progress
    from conformance.runner import print_summary, run

    try:
        cases = load_cases(args.paths)
    except (SpecErrors, UsageError, KeyboardInterrupt):
        for worker in workers.values():
            worker.close()
        if fresh_out:  # only the workers' logs are there: a run that ran nothing leaves nothing
            import shutil

            shutil.rmtree(args.out, ignore_errors=True)
        raise
    for ref in refs:
        if not ref.installed():
            print(f"note: {ref.name} is not installed; its cases are skipped. To install it: "
                  f"{ref.install_hint}", file=sys.stderr)
    registry_dir = args.expectations or ("expectations" if Path("expectations").is_dir() else None)
    # rich bars per framework on a terminal; nothing when stderr is not one or CI is set
    with interrupt.stop_on_interrupt() as stop, \
            live_progress([r.name for r in refs], devices, len(cases), enabled=not args.quiet) as progress:
        outcome = run(cases, refs, devices, args.out, registry_dir, progress, args.timeout, args.resume,
                      workers, stop)
    if outcome.interrupted:
        interrupt.print_interrupted(outcome, args.argv, args.out)
        return EXIT_INTERRUPTED
    print_summary(outcome)
    if args.resume:
        interrupt.print_resumed(outcome, args.out)
    print(f"\nframeworks' own output (logs): {outcome.log_dir}/")
    print(f"results written to {args.out}/")
    return EXIT_FINDINGS if outcome.exit_code else EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    cases = load_cases(args.paths)
    files = sorted({c.file for c in cases})
    print(f"{len(cases)} cases in {len(files)} files: all valid")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    cases = load_cases(args.paths)
    if args.format == "json":
        print(json.dumps([c.summary() for c in cases], indent=1))
        return EXIT_OK
    width = max(len(c.id) for c in cases)
    for case in cases:
        print(f"{case.id.ljust(width)}  {','.join(case.areas) or '-'}  {case.description}")
    return EXIT_OK


def cmd_conventions(args: argparse.Namespace) -> int:
    from conformance import conventions
    from conformance.report.merge import load_runs

    try:
        documents = load_runs(args.paths)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    table = conventions.rows(documents)
    render = {"json": conventions.to_json, "md": conventions.to_markdown,
              "doc": lambda t: conventions.to_document(t, documents)}[args.format]
    print(render(table), end="")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Merge results into one matrix and render it; exit 1 when a cell is unexpected."""
    import os
    import shutil

    from conformance import report
    from conformance.report.findings import summary_line
    from conformance.report.plots import MissingDependency

    terminal = args.out is None and args.format == "text" and sys.stdout.isatty()
    try:
        matrix = report.load(args.paths)
        text = report.render(matrix, args.format, color=terminal and not os.environ.get("NO_COLOR"),
                             width=shutil.get_terminal_size().columns if terminal else None)
    except report.ResultsFileError as exc:  # already "file: what is wrong; expected ..."
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except MissingDependency as exc:
        raise UsageError(str(exc)) from None
    if args.out is None:
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"{summary_line(matrix)}\n{args.format} report written to {out}")
    return EXIT_FINDINGS if matrix.unexpected() else EXIT_OK


def cmd_frameworks(args: argparse.Namespace) -> int:
    """Versions from the distributions' metadata; devices from each framework, imported in
    its own worker process, all side by side (see ``conformance.inventory``)."""
    from conformance.inventory import inventory, render_text

    rows = inventory(list(registry().values()), devices=not args.no_devices)
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.format == "json" else render_text(rows))
    return EXIT_OK


def cmd_fuzz(args: argparse.Namespace) -> int:
    """Differential fuzzing; see conformance.fuzz."""
    from conformance.fuzz.command import run as run_fuzz

    return run_fuzz(args)


COMMANDS = {"fuzz": cmd_fuzz, "run": cmd_run, "conventions": cmd_conventions, "report": cmd_report, "validate": cmd_validate, "list": cmd_list, "frameworks": cmd_frameworks}
COMMANDS["port"] = cmd_port
