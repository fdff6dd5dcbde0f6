"""``pytest --nbval-lax notebooks/``: the Greenplum tutorial needs a cluster, so it is not run."""

collect_ignore = ["04_greenplum.ipynb"]
