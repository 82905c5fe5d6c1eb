#!/usr/bin/env python3
"""Move slt's flat modules into layer folders and rewrite every reference to them (issue 19).

    python tools/relayout.py            # apply: git mv + rewrite, then print a summary
    python tools/relayout.py --dry-run  # print what would move and which files would change

Run it from the repository root on a clean work tree (it refuses otherwise), after the branches
that edit the moved modules have merged. It refuses to run twice: once ``slt/estimators/``
exists (or any target of the table below), the layout is taken as applied. Nothing is
committed: review ``git status`` / ``git diff -M``, run the tests, commit.

The layers, lowest first (imports point down only; ``tests/test_layout.py`` checks it):

    slt/ core     models, likelihoods, data, posterior (Problem), progress, setup_jax, plots/
    kernels/      one-step transitions: Langevin (MALA, SGLD), the localised HMC
    samplers/     many chains in one program: NUTS/HMC, tempered grid, replica exchange, SMC,
                  the LLC's chain programs, health checks, R-hat/ESS
    estimators/   numbers from draws: free energy, LLC (+ batched, along training, restricted),
                  lambda_hat, influence, Fisher, phases, symmetry, exact answers, quadrature, w*
    pipeline/     config (schema, type check, cross-checks, I/O), run directories, stages
    cli/          the commands (slt run/sweep/llc/fisher/calibrate/validate), sweep, report
    slt/ facade   api (slt.run), results (slt.load), __init__ (the public API)

What it rewrites, in every tracked .py, .md, .ipynb (cell sources only, not outputs), .toml,
.cfg, .txt, .yaml file except this one:

* dotted module paths anywhere: ``import slt.x``, ``from slt.x import``, ``slt.x.attr``,
  strings such as ``mock.patch("slt.x.f")``, ``sys.modules["slt.x"]``, ``"slt.stages.llc"``,
  ``:mod:`slt.x```; one regular-expression pass over all old names at once (no chained rewrite);
* ``from slt import a, b as c`` (one line or parenthesised): each name whose module moved is
  imported from its new package, statements split by package, local names kept
  (``from slt import samplers`` -> ``from slt.samplers import nuts as samplers``);
* relative imports inside slt/ (``from . import x``, ``from .x import y``): made absolute
  against the module's old place first, then rewritten like the rest;
* file paths in prose: ``slt/x.py`` -> ``slt/<folder>/x.py``, ``slt/stages/`` -> ...

``slt.cli`` keeps its name (a package now; its ``__init__`` re-exports ``main``, so the
``slt = "slt.cli:main"`` entry point and ``python -m slt.cli`` stay valid); pyproject.toml's
``packages.find include = ["slt*"]`` already finds the new packages.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

# ----------------------------------------------------------------------------- the table
# old path under slt/ -> new path under slt/ (a module, or a package folder with a trailing /)
MOVES = {
    # kernels: one transition of one chain
    "localized_hmc.py": "kernels/localized_hmc.py",
    # samplers: many chains, one compiled program, devices, health
    "samplers.py": "samplers/nuts.py",
    "tempered.py": "samplers/tempered.py",
    "replica.py": "samplers/replica.py",
    "smc.py": "samplers/smc.py",
    "llc_chains.py": "samplers/llc_chains.py",
    "health.py": "samplers/health.py",
    "diagnostics.py": "samplers/diagnostics.py",
    # estimators: arrays in, a small typed result out; never a config, never a file
    "free_energy.py": "estimators/free_energy.py",
    "replica_free_energy.py": "estimators/replica_free_energy.py",
    "learning_coefficient.py": "estimators/learning_coefficient.py",
    "lambda_hat.py": "estimators/lambda_hat.py",
    "llc_batch.py": "estimators/llc_batch.py",
    "llc_trajectory.py": "estimators/llc_trajectory.py",
    "restricted.py": "estimators/restricted.py",
    "influence.py": "estimators/influence.py",
    "fisher.py": "estimators/fisher.py",
    "phases.py": "estimators/phases.py",
    "symmetry.py": "estimators/symmetry.py",
    "exact.py": "estimators/exact.py",
    "quadrature.py": "estimators/quadrature.py",
    "optimize.py": "estimators/optimize.py",
    # pipeline: config -> data -> problem -> stages -> files
    "config/": "pipeline/config/",
    "runs.py": "pipeline/runs.py",
    "stages/": "pipeline/stages/",
    # cli: what a person types, and what the terminal shows
    "cli.py": "cli/commands.py",
    "sweep.py": "cli/sweep.py",
    "calibrate.py": "cli/calibrate.py",
    "report.py": "cli/report.py",
}
# modules whose dotted name stays valid after the move (the new package re-exports them)
KEEP_NAME = {"cli.py"}
# package __init__ files written when absent (an existing one, e.g. from the kernels branch, is kept)
PACKAGE_DOCS = {
    "kernels": "One-step transition kernels (``init``/``step`` over NamedTuple state and info): the\n"
               "layer under the samplers; imports only slt's core (models, posterior).",
    "samplers": "Many chains in one compiled program: NUTS/HMC (``nuts``), the tempered grid, replica\n"
                "exchange, SMC, the LLC's localised chain programs (``llc_chains``), the health checks\n"
                "every sampler shares and ArviZ diagnostics. Built on :mod:`slt.kernels`.",
    "estimators": "Numbers from draws: free energy (TI, WBIC, stepping stone, replica, SMC), the local\n"
                  "learning coefficient (single, batched, along training, restricted), lambda_hat,\n"
                  "influence and susceptibilities, Fisher information, phases, symmetry, exact answers,\n"
                  "quadrature references and the optimiser that finds w*. An estimator takes arrays and\n"
                  "returns a small typed result; it never reads a config or writes a file.",
    "pipeline": "The one-way pipeline config -> data -> problem -> stages -> files: the typed config\n"
                "(``config``), run directories and atomic writes (``runs``), and the stages that turn a\n"
                "config section into estimator calls (``stages``).",
}
CLI_INIT = '''"""The ``slt`` command line (:mod:`slt.cli.commands`), sweeps, ``slt calibrate`` and the text
report; ``main`` is the console entry point (``slt = "slt.cli:main"``)."""
from slt.cli.commands import EXIT_USAGE, build_parser, configure_jax, main

__all__ = ["EXIT_USAGE", "build_parser", "configure_jax", "main"]
'''
CLI_MAIN = '''"""``python -m slt.cli``: the ``slt`` command."""
import sys

from slt.cli.commands import main

sys.exit(main())
'''
SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".cfg", ".txt", ".yaml", ".yml"}
LINE_LIMIT = 450


# ----------------------------------------------------------------------------- names
def dotted(path: str) -> str:
    """``"stages/"`` -> ``"slt.stages"``, ``"samplers/nuts.py"`` -> ``"slt.samplers.nuts"``."""
    return "slt." + path.rstrip("/").removesuffix(".py").replace("/", ".")


RENAME = {dotted(old): dotted(new) for old, new in MOVES.items() if old not in KEEP_NAME}
# prose paths: a module file (``slt/x.py``), a package folder (``slt/stages``, ``slt/stages/llc.py``),
# and the flat file a package replaced (``slt/config.py``, named in older notes)
PATHS = {f"slt/{old.rstrip('/')}": f"slt/{new.rstrip('/')}" for old, new in MOVES.items()}
PATHS.update({f"slt/{old.rstrip('/')}.py": f"slt/{new}" for old, new in MOVES.items() if old.endswith("/")})

_names = "|".join(re.escape(k[4:]) for k in sorted(RENAME, key=len, reverse=True))
DOTTED_RE = re.compile(rf"(?<![\w.])slt\.({_names})(?!\w)")
_paths = "|".join(re.escape(k[4:]) for k in sorted(PATHS, key=len, reverse=True))
PATH_RE = re.compile(rf"(?<![\w/.])slt/({_paths})(?![\w])")   # longest first: config.py before config
FROM_SLT_RE = re.compile(r"^([ \t]*)from slt import (\((?:[^()]*)\)|[^\n#]*?)([ \t]*(?:#[^\n]*)?)$", re.M)
RELATIVE_RE = re.compile(r"^([ \t]*)from (\.+)([\w.]*) import ", re.M)


def rewrite_dotted(text: str, counts: Counter) -> str:
    def sub(m):
        counts["dotted"] += 1
        return RENAME["slt." + m.group(1)]

    def sub_path(m):
        counts["path"] += 1
        return PATHS["slt/" + m.group(1)]

    out = []
    for line in text.split("\n"):
        new = PATH_RE.sub(sub_path, DOTTED_RE.sub(sub, line))
        out.append(realign_comment(line, new) if new != line else line)
    return "\n".join(out)


def realign_comment(old: str, new: str) -> str:
    """Keep a trailing ``  # comment`` in its column where the code before it grew (down to two
    spaces of separation), so aligned comments stay aligned."""
    grown = len(new) - len(old)
    m = re.search(r"(\S)( {3,})#[^\n]*$", new)
    if grown <= 0 or m is None:
        return new
    code = new[:m.start(2)]
    if code.count('"') % 2 or code.count("'") % 2:   # the '#' is inside a string: leave it
        return new
    keep = max(2, len(m.group(2)) - grown)
    return new[:m.start(2)] + " " * keep + new[m.end(2):]


def rewrite_from_slt(text: str, counts: Counter) -> str:
    """``from slt import a, b as c`` -> one statement per new package, local names kept."""
    def sub(m):
        indent, body, comment = m.group(1), m.group(2), m.group(3)
        inner = body.strip()
        if inner.startswith("("):
            inner = inner[1:-1]
        items = [i.strip() for i in inner.replace("\n", " ").split(",") if i.strip()]
        groups: dict[str, list[str]] = {"slt": []}   # what stays at the top first, then by package
        changed = False
        for item in items:
            name, _, alias = (p.strip() for p in item.partition(" as "))
            new = RENAME.get(f"slt.{name}")
            if new is None:
                groups["slt"].append(item)
                continue
            changed = True
            package, _, base = new.rpartition(".")
            local = alias or name
            groups.setdefault(package, []).append(base if base == local else f"{base} as {local}")
        if not changed:
            return m.group(0)
        counts["from_slt"] += 1
        lines = [f"{indent}from {package} import {', '.join(names)}" for package, names in groups.items() if names]
        lines[-1] += comment
        return "\n".join(lines)

    return FROM_SLT_RE.sub(sub, text)


def absolute_relative_imports(text: str, module: str, is_package: bool, counts: Counter) -> str:
    """``from .x import y`` inside slt/ -> ``from slt.<package>.x import y`` (the old place)."""
    package = module if is_package else module.rpartition(".")[0]

    def sub(m):
        indent, dots, rest = m.groups()
        base = package.split(".")
        base = base[:len(base) - (len(dots) - 1)]
        counts["relative"] += 1
        return f"{indent}from {'.'.join(base + ([rest] if rest else []))} import "

    return RELATIVE_RE.sub(sub, text)


def rewrite_text(text: str, module: str | None = None, is_package: bool = False,
                 counts: Counter | None = None) -> str:
    counts = counts if counts is not None else Counter()
    if module is not None:
        text = absolute_relative_imports(text, module, is_package, counts)
    return rewrite_from_slt(rewrite_dotted(text, counts), counts)


def rewrite_notebook(text: str, counts: Counter) -> str | None:
    """A notebook's cell sources rewritten (outputs untouched); None where its JSON would not
    round-trip byte for byte (then it is left alone and reported)."""
    nb = json.loads(text)
    if json.dumps(nb, indent=1, ensure_ascii=False) + "\n" != text:
        return None
    for cell in nb.get("cells", []):
        src = cell.get("source")
        joined = "".join(src) if isinstance(src, list) else src
        new = rewrite_text(joined, counts=counts)
        if new != joined:
            cell["source"] = new.splitlines(keepends=True) if isinstance(src, list) else new
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------------- git
def git(*args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], check=check, capture_output=True, text=True).stdout


def module_of(path: Path) -> tuple[str, bool] | None:
    """The dotted name of a .py file under slt/ (before the move) and whether it is a package."""
    if path.suffix != ".py" or path.parts[0] != "slt":
        return None
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="show the plan, change nothing")
    ap.add_argument("--allow-dirty", action="store_true", help="run on a work tree with changes")
    args = ap.parse_args(argv)
    root = Path(git("rev-parse", "--show-toplevel").strip())
    if Path.cwd().resolve() != root.resolve():
        print(f"relayout: run from the repository root ({root})", file=sys.stderr)
        return 2
    slt = Path("slt")
    if (slt / "estimators").exists() or (slt / "pipeline").exists():
        print("relayout: already applied (slt/estimators/ or slt/pipeline/ exists); nothing to do",
              file=sys.stderr)
        return 1
    if git("status", "--porcelain").strip() and not (args.allow_dirty or args.dry_run):
        print("relayout: the work tree has changes; commit or stash them first (or --allow-dirty)",
              file=sys.stderr)
        return 2

    # the plan: which moves apply, and targets that are already taken
    moves, missing, taken = [], [], []
    for old, new in MOVES.items():
        src, dst = slt / old.rstrip("/"), slt / new.rstrip("/")
        if not src.exists():
            missing.append(old)
        elif dst.exists():
            taken.append(f"{old} -> {new}")
        else:
            moves.append((old, src, dst))
    if taken:
        print("relayout: these targets exist already; edit MOVES at the top of tools/relayout.py:\n  "
              + "\n  ".join(taken), file=sys.stderr)
        return 2

    # rewrite every tracked text file (before the move: relative imports resolve against old places)
    files = [Path(f) for f in git("ls-files").splitlines()]
    files = [f for f in files if f.suffix in SUFFIXES and f.is_file() and f != Path("tools/relayout.py")]
    changed, per_file, skipped_nb = {}, {}, []
    total = Counter()
    for f in files:
        text = f.read_text(encoding="utf-8")
        counts = Counter()
        if f.suffix == ".ipynb":
            new = rewrite_notebook(text, counts)
            if new is None:
                skipped_nb.append(str(f))
                continue
        else:
            mod = module_of(f)
            new = rewrite_text(text, *(mod or (None, False)), counts=counts)
        if new != text:
            changed[f] = new
            per_file[str(f)] = counts
            total.update(counts)

    print(f"relayout: {len(moves)} moves, {len(changed)} files rewritten"
          + (" (dry run: nothing changed)" if args.dry_run else ""))
    for old, src, dst in moves:
        print(f"  git mv {src} {dst}")
    for name in missing:
        print(f"  skipped (not in this tree): slt/{name}")
    if args.dry_run:
        for f, c in sorted(per_file.items()):
            print(f"  rewrite {f}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
        return 0

    for f, text in changed.items():
        f.write_text(text, encoding="utf-8")
    for old, src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(src), str(dst))
    for folder, doc in PACKAGE_DOCS.items():
        init = slt / folder / "__init__.py"
        if (slt / folder).is_dir() and not init.exists():
            init.write_text(f'"""{doc}"""\n')
            git("add", str(init))
    cli = slt / "cli"
    if cli.is_dir():
        for name, text in (("__init__.py", CLI_INIT), ("__main__.py", CLI_MAIN)):
            if not (cli / name).exists():
                (cli / name).write_text(text)
                git("add", str(cli / name))
    git("add", "-u")

    # the summary
    print("rewrites: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    for f, c in sorted(per_file.items()):
        print(f"  {f}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    for nb in skipped_nb:
        print(f"  NOT rewritten (its JSON does not round-trip; edit by hand): {nb}")
    top = sorted(p.name for p in slt.glob("*.py"))
    print(f"flat modules at the top of slt/: {len(top)} ({', '.join(top)})")
    unmapped = [p for p in top if p not in {"__init__.py", "_version.py", "api.py", "data.py", "likelihoods.py",
                                           "models.py", "posterior.py", "progress.py", "results.py",
                                           "setup_jax.py"}]
    if unmapped:
        print(f"  not in the table (new since it was written?): {', '.join(unmapped)}")
    long = sorted(((sum(1 for _ in p.open()), str(p)) for p in slt.rglob("*.py")), reverse=True)
    over = [f"{p} ({n})" for n, p in long if n > LINE_LIMIT]
    print(f"modules over {LINE_LIMIT} lines: {', '.join(over) if over else 'none'}")
    print("next: pytest tests/test_layout.py (cycles, layers), then the suite; review git diff -M --stat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
