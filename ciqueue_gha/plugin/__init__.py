"""The pytest glue: a pytest session as a queue worker.

hooks.py (the plugin's pytest hooks and its run loop), ahead.py (the lease window),
records.py (pytest's reports as queue records), session.py (a session started as a worker,
and its exit code), entry.py (the ``pytest11`` entry point, ``pytest --ciqueue``),
maxfail.py (pytest's ``-x`` / ``--maxfail`` as the build's cap).
"""
