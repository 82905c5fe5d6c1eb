"""The one-way pipeline config -> data -> problem -> stages -> files: the typed config
(``config``), run directories and atomic writes (``runs``), and the stages that turn a
config section into estimator calls (``stages``)."""
