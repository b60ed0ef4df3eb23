"""The `xbar` command: `xbar sweep` runs a study from a TOML file, `xbar validate` runs the validation checks."""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import logging
import os
import re
import sys
import time
from pathlib import Path

from . import __version__

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_STUDY = "pcm_drift"
# The sweep store of OUT.nc is the folder OUT.nc.parts beside it.
STORE_SUFFIX = ".parts"


class UsageError(Exception):
    """A command-line error reported with exit status 2."""


def bundled_configs() -> dict[str, Path]:
    """Return the example studies shipped with xbar, by name."""
    folder = importlib.resources.files("xbar.examples")
    return {Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")}


def resolve_config(argument: str | None) -> tuple[Path, bool]:
    """Return the configuration path and whether it is a bundled example."""
    bundled = bundled_configs()
    if argument is None:
        return bundled[DEFAULT_STUDY], True
    path = Path(argument)
    if path.is_file():
        return path, False
    name = path.stem if path.suffix == ".toml" else argument
    if path.parent == Path(".") and name in bundled:
        return bundled[name], True
    raise UsageError(
        f"configuration {argument!r} not found: pass a TOML file or one of the bundled studies "
        f"({', '.join(sorted(bundled))})"
    )


_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_size(text: str) -> int:
    """Return the bytes of a size such as "512MiB", "2GB", "4G" or "1000000" (K, M, G, T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: write a number of bytes with an optional unit, e.g. 512MiB, 2GB or 4G"
        )
    size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: it must be at least 1 byte")
    return size


def _progress_printer():
    """Return a progress callback (done, total) that draws a bar on the terminal, and a function that closes it."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    state = {"bar": None, "start": None, "initial": 0}

    def update(done, total):
        # The sweep reports first the points finished before it started (0, or those of a resumed
        # store), so that the rate counts only points computed now.
        if tqdm is not None:
            if state["bar"] is None:
                state["bar"] = tqdm(total=total, initial=done, unit="point", desc="sweep", file=sys.stderr)
            state["bar"].update(done - state["bar"].n)
            return
        if state["start"] is None:
            state["start"], state["initial"] = time.monotonic(), done
        elapsed = time.monotonic() - state["start"]
        rate = (done - state["initial"]) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else float("nan")
        print(f"\rsweep: {done}/{total} points, {rate:.1f} points/s, {left:.0f} s left   ", end="", file=sys.stderr, flush=True)

    def close():
        if state["bar"] is not None:
            state["bar"].close()
        elif state["start"] is not None:
            print(file=sys.stderr)
        state["bar"] = state["start"] = None

    return update, close


@contextlib.contextmanager
def _log_to_stderr(level: int):
    """Print the records of xbar's loggers at `level` and above to stderr while the block runs."""
    package_logger = logging.getLogger("xbar")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    previous_level = package_logger.level
    package_logger.addHandler(handler)
    package_logger.setLevel(level)
    try:
        yield
    finally:
        package_logger.removeHandler(handler)
        package_logger.setLevel(previous_level)


def _check_scheduler_argument(scheduler: str) -> None:
    from .variability.distributed import check_scheduler

    try:
        check_scheduler(scheduler)
    except (ImportError, ValueError) as error:
        raise UsageError(f"--scheduler: {error}") from None
    is_address = re.fullmatch(r"([a-z]+://)?[^:/\s]+:\d+", scheduler) is not None
    if not (scheduler.startswith("local:") or scheduler.endswith(".json") or is_address):
        raise UsageError(
            f"--scheduler {scheduler!r} is not a scheduler address: pass HOST:PORT or tcp://HOST:PORT, a scheduler "
            "file ending in .json, or local:N for N local workers"
        )


def command_sweep(args) -> int:
    from .config import ConfigError, load_config

    config_path, is_bundled = resolve_config(args.config)
    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise UsageError(str(error)) from None

    if args.output is not None:
        output = Path(args.output)
    else:
        folder = Path.cwd() if is_bundled else config_path.parent
        output = folder / f"{config_path.stem}.nc"
    if output.suffix != ".nc":
        raise UsageError(f"output {str(output)!r} must end in .nc (NetCDF)")
    plot_path = output.with_suffix(".png")
    store = output.with_name(output.name + STORE_SUFFIX)
    if output.is_dir():
        raise UsageError(f"output {str(output)!r} is a folder; pass a file path ending in .nc")
    for path in (output, None if args.no_plot else plot_path):
        if path is not None and path.exists() and not args.overwrite:
            raise UsageError(f"{str(path)!r} already exists; pass --overwrite to replace it or -o to write elsewhere")
    if store.exists() and not args.resume:
        from .studies import study_file_change

        change = study_file_change(store, config)
        if change is not None:
            raise UsageError(
                f"the sweep store {str(store)!r} of an unfinished sweep exists, and {change}; delete the folder to "
                "start over, or restore the study file and pass --resume to continue that sweep"
            )
        raise UsageError(
            f"the sweep store {str(store)!r} of an unfinished sweep exists; pass --resume to continue that sweep, "
            "or delete the folder to start over"
        )
    if args.scheduler is not None:
        _check_scheduler_argument(args.scheduler)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {str(output.parent)!r}: {error}") from None

    from .studies import MEMORY_BUDGET, run_study
    from .variability.distributed import ClusterError
    from .variability.output import plot_sweep, summary_table, write_netcdf
    from .variability.store import StoreError, remove_store

    points = len(config.seeds)
    for axis in config.axes:
        points *= len(axis.values)
    print(f"xbar {__version__}: study {config.name!r} from {config_path} ({points} points)", file=sys.stderr)
    show_bar = not args.quiet and sys.stderr.isatty()
    progress, close = _progress_printer() if show_bar else (None, lambda: None)
    start = time.monotonic()
    try:
        with _log_to_stderr(logging.WARNING if show_bar else logging.INFO):
            ds = run_study(
                config, progress=progress, store=store, resume=args.resume,
                memory_budget=MEMORY_BUDGET if args.memory is None else args.memory, scheduler=args.scheduler,
            )
    except (ImportError, StoreError) as error:
        raise UsageError(str(error)) from None
    except ClusterError as error:
        close()
        print(f"xbar: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        close()
        if store.exists():
            done = len(list(store.glob("chunk-*.npz")))
            if done:
                print(f"\nxbar: the {done} finished chunks are kept in {store}; run the same command with --resume "
                      "to continue", file=sys.stderr)
            else:
                print(f"\nxbar: no chunk had finished, so --resume would start over. A smaller --memory gives "
                      f"smaller chunks that finish sooner (the store {store} is kept)", file=sys.stderr)
        raise
    finally:
        close()
    elapsed = time.monotonic() - start

    # Outputs first, messages after: a closed stdout (`| head`) must not cost a file.
    write_netcdf(ds, output)
    if not args.keep_store:
        remove_store(store)
    plot_message = None
    if not args.no_plot:
        try:
            if ds.attrs.get("workload") == "hwa_digits":
                # Both trainings against time, one panel per network, instead of the first metric alone.
                from .hwa_digits import plot_hwa_digits

                plot_hwa_digits(ds, plot_path)
            elif ds.attrs.get("workload") == "faults_digits":
                from .faults_digits import plot_faults_digits

                plot_faults_digits(ds, plot_path)
            else:
                plot_sweep(ds, plot_path)
        except (ImportError, ValueError) as error:
            print(f"no plot written: {error}", file=sys.stderr)
        else:
            plot_message = f"wrote {plot_path}"
    print(summary_table(ds, max_rows=500))
    print(f"wrote {output} ({elapsed:.1f} s)")
    if args.keep_store:
        print(f"kept the sweep store {store}")
    if plot_message is not None:
        print(plot_message)
    return 0


def command_validate(args) -> int:
    from .validation import format_results, list_checks, run_checks

    if args.list:
        print("\n".join(list_checks()))
        return 0
    known = list_checks()
    for name in args.check or []:
        if name not in known:
            raise UsageError(f"unknown check {name!r}; known checks: {', '.join(known)}")
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = run_checks(output_dir, names=args.check or None)
    print(format_results(results))
    failed = [r.name for r in results if not r.passed]
    if any(result.plot for result in results):
        where = f"plots in {output_dir}"
    else:
        where = 'no plots written (they need matplotlib: pip install "xbar-sim[plot]")'
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed; {where}")
    return EXIT_FAILED if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xbar", description="Device-level simulation of memristor and PCM crossbars.")
    parser.add_argument("--version", action="version", version=f"xbar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="run a parameter sweep from a TOML study file")
    studies = ", ".join(sorted(bundled_configs()))
    sweep.add_argument(
        "config", nargs="?", help=f"TOML file or bundled study name ({studies}; default: {DEFAULT_STUDY})"
    )
    sweep.add_argument("-o", "--output", help="NetCDF output path (default: next to the config, named after it; "
                       "for a bundled study, in the current folder); the plot goes beside it as .png")
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    sweep.add_argument("--no-plot", action="store_true", help="do not write the PNG plot")
    sweep.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bar: log one line per finished chunk instead (the default when stderr is not a terminal)",
    )
    sweep.add_argument(
        "--resume", action="store_true",
        help=f"continue an interrupted sweep from the finished chunks in OUTPUT{STORE_SUFFIX}/ (a new sweep starts "
        "when there is none); the configuration must be unchanged",
    )
    sweep.add_argument(
        "--keep-store", action="store_true",
        help=f"keep the sweep store folder OUTPUT{STORE_SUFFIX}/ after the output is written (default: delete it)",
    )
    sweep.add_argument(
        "--memory", type=parse_size, metavar="SIZE",
        help="working memory of one chunk, which sets the chunk size: bytes, or a number with a unit such as 512MiB, "
        "2GB or 4G (K, M, G, T are powers of 1024); default 1GiB, per worker with --scheduler",
    )
    sweep.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the chunks on a dask.distributed cluster: a scheduler address (tcp://host:8786), a scheduler file "
        "(.json), or local:N for N worker processes on this machine; needs the distributed extra, and the output "
        "folder must be on a file system that every worker shares",
    )
    sweep.set_defaults(handler=command_sweep)

    validate = commands.add_parser("validate", help="compare the models with published curves")
    validate.add_argument("-o", "--output-dir", default="xbar-validation", help="folder for the plots (default: xbar-validation)")
    validate.add_argument("--check", action="append", help="run only this check (repeatable)")
    validate.add_argument("--list", action="store_true", help="list the checks and exit")
    validate.set_defaults(handler=command_validate)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"xbar: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nxbar: interrupted; no output file was written or changed after the last 'wrote' message",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of the output went away (for example `xbar sweep | head`). Every file is written before
        # anything is printed, so only the messages are lost; silence the rest of them.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def run() -> None:
    """Run the command line and exit: the entry point of the `xbar` console script."""
    status = main()
    if status == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        # Interpreter shutdown while XLA's CPU threads still run an interrupted computation can crash
        # (seen with jax 0.10.2), so the process ends at once. Outputs are written atomically, so no
        # finished file is lost and no partial one is left.
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
