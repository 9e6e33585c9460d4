"""The flow tests use the one Prefect test server of their process (``prefect_harness``, in
tests/conftest.py, shared with the tests that point `crnn` commands at it)."""
