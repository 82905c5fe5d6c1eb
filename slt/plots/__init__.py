"""Matplotlib figures, one module per concept. Every function returns a Figure (never shows
or saves it): the run writer saves figures, notebooks display them."""
import matplotlib

matplotlib.use("Agg", force=False)
