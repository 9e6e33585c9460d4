"""`python -m crnn.cli`: the `crnn` command."""

import sys

from crnn.cli.main import main

sys.exit(main())
