"""Prefect flows over the crnn library. Importing this package does not import Prefect.

It does mask secrets in every output of the process (:mod:`crnn.secrets`): a worker's flow-run
process imports the flows from here, so its logs reach the Prefect server redacted too.
"""

from crnn.secrets import install

install()
