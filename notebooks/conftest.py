"""``pytest --nbval-lax notebooks/``: the Greenplum tutorial needs a cluster, so a folder run
leaves it out; name it to run it there (``DATABASE_URL`` = the coordinator):
``pytest --nbval-lax notebooks/04_greenplum.ipynb``, as ``tests/notebooks`` does on Greenplum."""

collect_ignore = ["04_greenplum.ipynb"]
