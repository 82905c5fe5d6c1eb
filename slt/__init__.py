"""slt: a JAX toolkit for singular learning theory."""
__version__ = "0.1.0"
