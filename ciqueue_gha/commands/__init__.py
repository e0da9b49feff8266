"""The ``worker``, ``summary`` and ``run`` commands, one module each."""
