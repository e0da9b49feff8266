"""Helpers the tests share: processes, network faults."""
