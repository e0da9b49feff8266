"""Trust in a build's result: quarantined tests, the flaky history of a repository's tests,
and how each failure of a build stands against both (new, known flaky, quarantined)."""
