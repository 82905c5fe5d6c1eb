"""The package's version (its own module so that :mod:`slt.pipeline.runs` can record it without importing
the package's ``__init__``, which would close an import cycle through :mod:`slt.api`)."""
__version__ = "0.1.0"
