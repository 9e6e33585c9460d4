"""Prefect flows over the crnn library. Importing this package does not import Prefect."""
