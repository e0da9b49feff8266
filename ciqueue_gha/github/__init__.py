"""GitHub: the environment of a job, workflow commands, the checks API."""
