"""``conformance`` command line: run, validate, list, conventions, report, frameworks.

Exit codes: 0 nothing unexpected; 1 an unexpected divergence, error or stale expectation;
2 bad usage or a bad spec.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
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
from conformance.errors import UNREADABLE, SpecErrors, did_you_mean
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
            hint = did_you_mean(first, commands)
            self.error(f"unknown command {first!r}{hint}; expected one of {', '.join(commands)}")
        return super().parse_known_args(args, namespace)

    def _commands(self) -> list[str]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return list(action.choices)
        return []


def positive_seconds(text: str) -> float:
    """An argparse type: a time limit in seconds, a finite number above 0 (a limit of 0
    would turn every case into a timeout error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected seconds above 0, "
                                         "e.g. 120") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: expected seconds above 0, e.g. 120")
    return value


def writable_folder(raw: str, option: str = "--out") -> Path:
    """``raw`` as a folder the run can write its files into, created if needed; a path that
    is a file, or where nothing can be written, is a usage error before anything runs."""
    path = Path(raw)
    expected = "expected a folder that exists or can be created, and that can be written"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {raw}: is a file, not a folder; {expected}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".conformance-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{option} {raw}: cannot write there ({exc.strerror or exc}); {expected}") from None
    return path


def _add_run_options(run: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``convert`` share."""
    run.add_argument("--device", "-d", default="cpu", help="comma-separated: cpu, gpu (default: cpu)")
    run.add_argument("--out", "-o", default="results", help="folder for results files (default: results)")
    run.add_argument("--expectations", default=None, help="folder of the expected-divergence registry "
                     "(default: ./expectations when it exists)")
    run.add_argument("--timeout", type=positive_seconds, default=120.0, metavar="SECONDS",
                     help="per-case time limit; a case past it is an error and its worker restarts")
    run.add_argument("--require-device", action="store_true",
                     help="exit 2 when a framework does not see a device of --device (default: "
                     "its cases are skipped); for CI jobs on GPU machines")
    run.add_argument("--resume", action="store_true",
                     help="keep the cases an interrupted run already logged in --out and run the rest")
    run.add_argument("--quiet", "-q", action="store_true", help="no per-case progress")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="conformance", description="Cross-framework conformance kit for "
                     "BatchNorm and Dropout train/eval semantics.")
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run specs on frameworks and write results")
    run.add_argument("paths", nargs="*", default=["specs"], help="spec files or folders (default: specs)")
    run.add_argument("--framework", "-f", default="", help="comma-separated, e.g. torch,paddle,tf "
                     "(default: every installed framework)")
    run.add_argument("-k", dest="keyword", default=None, metavar="EXPR",
                     help="only cases whose id matches, pytest's grammar: -k 'momentum and not rank2'")
    run.add_argument("--adapter", action="append", default=[], metavar="MODULE:CLASS",
                     help="a third-party adapter class (repeatable)")
    _add_run_options(run)

    convert = sub.add_parser("convert", help="run specs through converters (source framework -> "
                             "target runtime) and judge the converted layers like any framework")
    convert.add_argument("paths", nargs="*", default=["specs"], help="spec files or folders (default: specs)")
    convert.add_argument("--converter", "-c", required=True, metavar="NAME",
                         help="comma-separated converter names, e.g. torch-onnx, or module:Class of "
                         "your own ConverterAdapter")
    convert.add_argument("-k", dest="keyword", default=None, metavar="EXPR", help="as for run")
    _add_run_options(convert)

    validate = sub.add_parser("validate", help="check spec files; exit 2 on the first bad one")
    validate.add_argument("paths", nargs="*", default=["specs"])

    lister = sub.add_parser("list", help="list the cases of the specs")
    lister.add_argument("paths", nargs="*", default=["specs"])
    lister.add_argument("-k", dest="keyword", default=None, metavar="EXPR", help="as for run")
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


def load_cases(paths: Sequence[str], keyword: str | None = None) -> list[Case]:
    """The cases under ``paths`` (files, folders, or ``file.yaml::case`` for one case),
    those that ``-k keyword`` selects (``conformance.selection``)."""
    from conformance.selection import SelectionError, by_name, keep_matching, split_path
    from conformance.spec import (
        load_paths,  # numpy, YAML and jsonschema: only when needed
    )

    plain = [p for p in paths if split_path(p)[1] is None]
    cases, errors = load_paths(plain) if plain else ([], [])
    seen = {c.id for c in cases}
    for raw in paths:
        path, name = split_path(raw)
        if name is None:
            continue
        loaded, problems = load_paths([path])
        errors += problems
        try:
            chosen = by_name(loaded, path, name) if not problems else []
        except SelectionError as exc:
            raise UsageError(str(exc)) from None
        cases += [c for c in chosen if c.id not in seen]
        seen.update(c.id for c in chosen)
    if errors:
        raise SpecErrors(errors)
    if not cases:
        raise UsageError(f"no spec cases found under {', '.join(paths)}; expected .yaml spec files")
    try:
        selected = keep_matching(cases, keyword)
    except SelectionError as exc:
        raise UsageError(str(exc)) from None
    if not selected:
        raise UsageError(f"-k {keyword!r} selects none of the {len(cases)} cases under "
                         f"{', '.join(paths)}; expected an expression matching case ids, e.g. -k momentum")
    return selected


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    for device in devices:
        if device not in DEVICES:
            hint = did_you_mean(device, DEVICES)
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


def require_installed(refs: Sequence[AdapterRef]) -> None:
    """Frameworks and adapters the user named explicitly must load: skipping them would
    turn a typo into a green run that tested nothing. (With no names, the kit runs
    whatever is installed and skips nothing.)"""
    missing = [r for r in refs if not r.installed()]
    if missing:
        raise UsageError("; ".join(f"{r.name} ({r.target}) was named but is not installed; to "
                                   f"install it: {r.install_hint}" for r in missing)
                         + ". Nothing was run (leave out --framework/--adapter to run whatever "
                         "is installed)")


def cmd_run(args: argparse.Namespace) -> int:
    refs = select_frameworks(args.framework, args.adapter)
    explicit = bool(args.framework or args.adapter)
    if explicit:
        require_installed(refs)
    return run_refs(args, refs, explicit)


def cmd_convert(args: argparse.Namespace) -> int:
    """``conformance convert --converter NAME``: each converter a column of results, run by
    the same machinery as ``run`` (``conformance.converters``); its artifacts under
    ``<out>/artifacts/``."""
    from conformance import converters

    artifacts = Path(args.out).resolve() / "artifacts"
    try:
        refs = converters.resolve(args.converter, str(artifacts))
    except UnknownFramework as exc:
        raise UsageError(str(exc)) from None
    if not refs:
        raise UsageError("--converter: no converter named; expected e.g. --converter torch-onnx")
    require_installed(refs)
    return run_refs(args, refs, True)


def run_refs(args: argparse.Namespace, refs: list[AdapterRef], explicit: bool) -> int:
    """Run the cases of ``args.paths`` on ``refs`` and write results (``run`` and ``convert``)."""
    from conformance.worker import (
        prestart,  # light: spawning comes before the heavy imports
    )

    devices = parse_devices(args.device)
    registry_dir = args.expectations or ("expectations" if Path("expectations").is_dir() else None)
    from conformance import expectations

    expectations.check_folder(registry_dir)  # a mistake there is bad input, before anything runs
    # the frameworks import (most of a run's start) while the kit imports and the specs load
    fresh_out = not Path(args.out).exists()
    writable_folder(args.out)  # before the workers, whose logs go there
    workers = prestart(refs, args.timeout, Path(args.out) / "logs")

    from conformance import interrupt
    from conformance.report.progress import live_progress
    from conformance.runner import print_summary, run

    try:
        cases = load_cases(args.paths, args.keyword)
    except (SpecErrors, UsageError, KeyboardInterrupt):
        for worker in workers.values():
            worker.close()
        if fresh_out:  # only the workers' logs are there: a run that ran nothing leaves nothing
            import shutil

            shutil.rmtree(args.out, ignore_errors=True)
        raise
    # rich bars per framework on a terminal; nothing when stderr is not one or CI is set
    with interrupt.stop_on_interrupt() as stop, \
            live_progress([r.name for r in refs], devices, len(cases), enabled=not args.quiet) as progress:
        outcome = run(cases, refs, devices, args.out, registry_dir, progress, args.timeout, args.resume,
                      workers, stop)
    if outcome.interrupted:
        interrupt.print_interrupted(outcome, args.argv, args.out)
        return EXIT_INTERRUPTED
    print_summary(outcome, details=f"conformance report {args.out}")
    if args.resume:
        interrupt.print_resumed(outcome, args.out)
    print(f"\nframeworks' own output (logs): {outcome.log_dir}/")
    print(f"results written to {args.out}/")
    if args.command == "convert":
        print(f"converted artifacts (source, converter output, converted result): {args.out}/artifacts/")
    refused = unmet_requirements(outcome, explicit, args.require_device)
    for line in refused:
        print(f"conformance {args.command}: {line}", file=sys.stderr)
    if refused:
        return EXIT_USAGE
    return EXIT_FINDINGS if outcome.exit_code else EXIT_OK


def unmet_requirements(outcome: Any, explicit: bool, require_device: bool) -> list[str]:
    """Why the run must exit 2 although it ran: a framework named explicitly that failed to
    start, or (``--require-device``) a device a framework does not see. The results are
    written already; these say what the run could not test."""
    lines = []
    for doc in outcome.documents:
        not_run = doc.get("not_run") or {}
        column = f"{doc['framework']}-{doc['device']}"
        if explicit and not_run.get("kind") == "startup":
            lines.append(f"{column}: {doc['framework']} was named but failed to start: "
                         f"{not_run['reason']}")
        if require_device and not_run.get("kind") == "device":
            lines.append(f"{column}: --require-device: {not_run['reason']}")
    return lines


def cmd_validate(args: argparse.Namespace) -> int:
    cases = load_cases(args.paths)
    files = sorted({c.file for c in cases})
    print(f"{len(cases)} cases in {len(files)} files: all valid")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    cases = load_cases(args.paths, args.keyword)
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
    render = {"json": lambda t, _: conventions.to_json(t), "md": lambda t, _: conventions.to_markdown(t),
              "doc": conventions.to_document}[args.format]
    try:
        text = render(conventions.rows(documents), documents)
    except UNREADABLE:
        _refuse_unreadable_case(documents, lambda one: render(conventions.rows(one), one))
        raise
    print(text, end="")
    return EXIT_OK


def _refuse_unreadable_case(documents: list[dict[str, Any]], render: Any) -> None:
    """Render each case of each document alone, and raise a ``UsageError`` naming the first
    that fails (a hand-edited results file); return when none fails alone."""
    for doc in documents:
        for case in doc["cases"]:
            try:
                render([{**doc, "cases": [case]}])
            except UNREADABLE as exc:
                raise UsageError(f"{', '.join(map(str, doc.get('sources') or ['?']))}: "
                                 f"case {case['id']!r} cannot be read ({type(exc).__name__}: {exc}); "
                                 "expected an entry as `conformance run` writes it") from None


def cmd_report(args: argparse.Namespace) -> int:
    """Merge results into one matrix and render it; exit 1 when a cell is unexpected."""
    import shutil

    from conformance import report
    from conformance.report.findings import summary_line

    terminal = args.out is None and args.format == "text" and sys.stdout.isatty()
    try:
        matrix = report.load(args.paths)
        text = report.render(matrix, args.format, color=terminal and not os.environ.get("NO_COLOR"),
                             width=shutil.get_terminal_size().columns if terminal else None)
    except report.ResultsFileError as exc:  # already "file: what is wrong; expected ..."
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    if args.out is None:
        sys.stdout.write(text)
    else:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot write the report there ({exc.strerror or exc}); "
                             "expected a file path in a writable folder") from None
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


COMMANDS = {"fuzz": cmd_fuzz, "run": cmd_run, "convert": cmd_convert, "conventions": cmd_conventions, "report": cmd_report, "validate": cmd_validate, "list": cmd_list, "frameworks": cmd_frameworks}
COMMANDS["port"] = cmd_port
