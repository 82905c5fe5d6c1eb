"""Numbers from draws: free energy (TI, WBIC, stepping stone, replica, SMC), the local
learning coefficient (single, batched, along training, restricted), lambda_hat,
influence and susceptibilities, Fisher information, phases, symmetry, exact answers,
quadrature references and the optimiser that finds w*. An estimator takes arrays and
returns a small typed result; it never reads a config or writes a file."""
