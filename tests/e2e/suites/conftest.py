"""The suites below are run by tests/e2e/test_runner.py through ciqueue-gha, each from a copy
of its folder; they are not tests of this project. Their files are check_*.py (set by the
pytest.ini of each), and this keeps the project's own run from even loading their conftests."""

collect_ignore_glob = ["*"]
