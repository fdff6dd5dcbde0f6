"""Code that runs inside a database backend: the bodies of gpdl's per-row SQL functions.

Imported by the server's Python (plpython3u) on the coordinator and on every
segment: reading and decoding images (``fragmenter``, ``accessor``,
``resolver``, ``bridge``), splitting packed rows (``split``), training and
evaluating a hop (``worker``), predicting (``inference``), GPU use (``gpu``)
and what the server's Python sees (``info``). It never imports the client
(``gpdl_jupyter``) nor gpdl's drivers (sessions, psycopg2): only itself and the
pure shared modules ``errors``, ``selection`` and ``keras_model``.
``tests/unit/test_import_boundaries.py`` keeps it so.
"""
