"""Sampling kernels, each written once, blackjax-shaped: ``init(position, target) -> State``,
``step(key, state, target, ...) -> (State, Info)`` on ONE chain (vmap outside), log densities
(never potentials), NamedTuple states and infos: :mod:`~slt.kernels.integrators` (State,
leapfrog), :mod:`~slt.kernels.hmc`, :mod:`~slt.kernels.langevin` (MALA, SGLD),
:mod:`~slt.kernels.adaptation`, :mod:`~slt.kernels.devices` (chains over devices). A target is
``position -> State``; the posteriors' targets are defined once, in :mod:`slt.posterior`.
"""
