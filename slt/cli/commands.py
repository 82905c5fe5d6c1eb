"""The ``slt`` command line: ``slt run``, ``slt sweep``, ``slt llc``, ``slt fisher``, ...

User mistakes (bad config, missing file, unwritable output) exit with status 2 and one line
on stderr naming the problem, before any sampling starts and without a traceback.
Progress goes to stderr; stdout gets, when a command is done, a short summary of the run
(:func:`slt.cli.report.format_summary`) whose last line is the run directory (``--quiet``: only
the directory; ``--json``: summary.json's content).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from slt.setup_jax import configure_jax  # noqa: F401  (re-exported: scripts call slt.cli.configure_jax)

EXIT_USAGE = 2


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    if config_required:
        p.add_argument("config", help="experiment config (YAML); see the README's config reference")
    else:
        p.add_argument("config", nargs="?", default=None,
                       help="experiment config (YAML); default: the headline two-node ReLU experiment")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="parent directory of the run directory (default: output.dir, 'runs')")
    p.add_argument("--set", dest="overrides", metavar="KEY.PATH=VALUE", action="append", default=[],
                   help="override a config value, e.g. --set data.n=500 --set sampler.num_chains=8 "
                        "(repeatable; values are parsed as YAML)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not use JAX's persistent compilation cache")
    p.add_argument("--quiet", action="store_true",
                   help="no progress messages, and print only the run directory (no summary)")
    p.add_argument("--json", action="store_true",
                   help="print summary.json's content (sweep.json for a sweep) instead of the text "
                        "summary; the run directory goes to stderr (silenced by --quiet)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slt",
        description="Singular learning theory toolkit: sample tempered posteriors of small neural "
                    "networks, estimate free energies and learning coefficients, inspect Fisher "
                    "degeneracy. Every command reads a YAML config and writes a run directory with "
                    "config.yaml, summary.json, posterior.nc and PNG figures.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="sample the posterior and run every analysis section of a config",
                       description="Sample the tempered posterior with NUTS/HMC (numpyro) and run every "
                                   "analysis section present in the config (free_energy, lambda, llc, "
                                   "fisher). Without CONFIG, runs the headline two-node ReLU experiment.")
    _common(p, config_required=False)

    p = sub.add_parser("sweep", help="run a config over the sweep's n (and seeds); resumable",
                       description="Run the config once per (n, seed) of its sweep section, one run "
                                   "directory per point, plus sweep.json, sweep.csv and the F_n vs log n "
                                   "figure. Re-running skips points already complete.")
    _common(p)
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: points in this process, reusing compiled programs (default); "
                        "ray: one Ray task per point")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (backend ray; default: start a local Ray)")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs for a local Ray (backend ray without --address)")

    p = sub.add_parser("llc", help="estimate the local learning coefficient only (the llc section)",
                       description="Estimate the local learning coefficient at the config's llc.at point "
                                   "(truth, trained, or params) without posterior sampling.")
    _common(p)

    p = sub.add_parser("fisher", help="Fisher information spectrum, rank and nullity only",
                       description="Compute the Fisher information at the config's fisher.at point: "
                                   "eigenvalues, numerical rank, nullity and the null directions explained.")
    _common(p)

    p = sub.add_parser("calibrate", help="LLC step-size x nbeta calibration sweep with a figure",
                       description="Run the LLC sampler over a grid of step sizes and nbeta values "
                                   "(like devinterp's epsilon-beta analysis) and plot the LLC estimate, "
                                   "acceptance and loss traces for each.")
    _common(p)
    p.add_argument("--step-sizes", type=float, nargs="+", default=None, metavar="EPS",
                   help="step sizes to try (default: a log grid around the sampler's default)")
    p.add_argument("--nbetas", type=float, nargs="+", default=None, metavar="NBETA",
                   help="n*beta values to try (default: n/log n times 0.5, 1, 2)")

    p = sub.add_parser("validate", help="check a config and print the resolved version",
                       description="Validate a config (exit status 2 on any problem) and print it "
                                   "with every default filled in.")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    return parser


def _fail(message: str) -> int:
    # one line, whatever the message quotes (a YAML key may hold a newline or a control character)
    message = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))
    print(f"slt: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    configure_jax(cache=not getattr(args, "no_cache", False))
    from slt.pipeline import config as config_mod
    from slt.pipeline.config import ConfigError

    from slt import progress

    quiet = getattr(args, "quiet", False)
    progress.set_enabled(not quiet)    # progress bars: terminals only, and never with --quiet
    log = (lambda s: None) if quiet else progress.write    # stderr, above any open bar
    try:
        path = Path(args.config) if args.config else config_mod.default_config_path()
        cfg = config_mod.load(path, args.overrides)
        if args.command == "validate":
            import yaml

            print(yaml.safe_dump(config_mod.to_dict(cfg), sort_keys=False), end="")
            return 0
        if args.command in ("llc", "calibrate") and cfg.llc is None:
            cfg = config_mod.from_dict({**config_mod.to_dict(cfg), "llc": {}}, cfg.base_dir)
        if args.command == "fisher" and cfg.fisher is None:
            cfg = config_mod.from_dict({**config_mod.to_dict(cfg), "fisher": {}}, cfg.base_dir)
        if args.command == "sweep" and (cfg.sweep is None or not cfg.sweep.n):
            raise ConfigError("sweep.n", "required for slt sweep (a list of sample sizes)")
        from slt.pipeline import runs

        # Ctrl-C is remembered and re-raised at checkpoints: a KeyboardInterrupt raised inside
        # a library's gc callback is dropped by Python (runs.sigint_checkpoints)
        with runs.sigint_checkpoints():
            if args.command == "run":
                run_dir = runs.execute(cfg, out_dir=args.out, log=log)
            elif args.command in ("llc", "fisher"):
                run_dir = runs.execute(cfg, stages=[args.command], out_dir=args.out, log=log)
            elif args.command == "sweep":
                from slt.cli import sweep

                runs.check_data_file(cfg, max(cfg.sweep.n))   # bad data: exit 2 before any directory
                run_dir = sweep.run_sweep(cfg, out_dir=args.out, backend=args.backend,
                                          address=args.address, num_cpus=args.num_cpus, log=log)
            elif args.command == "calibrate":
                from slt.cli.calibrate import calibrate

                run_dir = calibrate(cfg, out_dir=args.out, step_sizes=args.step_sizes,
                                    nbetas=args.nbetas, log=log)
            else:  # pragma: no cover - argparse guards the choices
                return _fail(f"unknown command {args.command!r}")
            runs.check_interrupt()
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("slt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from slt.samplers.health import ModelError
        from slt.pipeline.runs import RunError

        if isinstance(exc, (RunError, ModelError)):
            return _fail(str(exc))
        raise
    _report(run_dir, args, log)
    return 0


def _report(run_dir: Path, args: argparse.Namespace, log) -> None:
    """What the command prints on stdout when it is done (progress went to stderr): the text
    summary of :mod:`slt.cli.report` ending with the run directory; only the directory with
    ``--quiet``; the summary's JSON with ``--json``."""
    import json

    from slt.cli import report

    if args.json:
        name = "sweep.json" if (Path(run_dir) / "sweep.json").is_file() else "summary.json"
        print(json.dumps(json.loads((Path(run_dir) / name).read_text()), indent=2))
        log(f"run directory: {run_dir}")
    elif args.quiet:
        print(run_dir)
    else:
        try:
            text = report.format_summary(report.read_summary(run_dir), run_dir)
        except Exception as exc:  # the run is complete on disk: never fail it over its report
            print(f"slt: could not format the summary ({type(exc).__name__}: {exc})", file=sys.stderr)
            text = str(run_dir)
        print(text)


if __name__ == "__main__":
    sys.exit(main())
