"""The ``slt`` command line (:mod:`slt.cli.commands`), sweeps, ``slt calibrate`` and the text
report; ``main`` is the console entry point (``slt = "slt.cli:main"``)."""
from slt.cli.commands import EXIT_USAGE, build_parser, configure_jax, main

__all__ = ["EXIT_USAGE", "build_parser", "configure_jax", "main"]
