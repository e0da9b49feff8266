"""The command line and the package as a user meets them: subprocesses, a built wheel."""
