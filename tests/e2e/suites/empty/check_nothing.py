"""No tests here: a worker over this folder collects nothing."""
