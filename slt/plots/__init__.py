"""Matplotlib figures, one module per concept. Every function returns a Figure (never shows
or saves it): the run writer saves figures, notebooks display them."""
import os
import sys

import matplotlib

# Agg for scripts and the CLI (no window, no display needed); but never switch the backend of an
# IPython/Jupyter session (its inline backend is how notebooks show figures) or one the user chose.
if not ({"ipykernel", "IPython"} & set(sys.modules) or os.environ.get("MPLBACKEND")):
    matplotlib.use("Agg", force=False)
