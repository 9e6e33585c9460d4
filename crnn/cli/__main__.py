"""`python -m crnn.cli`: the `crnn` command."""

from crnn.cli.main import command

command()
