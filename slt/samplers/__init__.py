"""Many chains in one compiled program: NUTS/HMC (``nuts``), the tempered grid, replica
exchange, SMC, the LLC's localised chain programs (``llc_chains``), the health checks
every sampler shares and ArviZ diagnostics. Built on :mod:`slt.kernels`."""
