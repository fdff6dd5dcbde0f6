"""AutoML's pure decision logic: schedules, parameters, search spaces, oracles, plans.

Nothing here does I/O, touches a database or imports TensorFlow (``space`` reaches
Keras only through :mod:`gpdl_backend.selection`'s validation of the strings it
writes). Every random choice is seeded.

* :mod:`.hyperband`: MADlib's ``hyperband_schedule`` table.
* :mod:`.params`: the ``automl_params`` text of each method.
* :mod:`.space`: search spaces from MADlib's grids and Optuna samplers over them.
* :mod:`.oracles`: what to train next (ASHA, synchronous Hyperband, plain sampling).
* :mod:`.simulate`: a pure event simulation of a search on parallel workers.
* :mod:`.preview`: the plan shown before a search starts.
"""
