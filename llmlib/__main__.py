"""`python -m llmlib`: the same command line as the `llmlib` script (see llmlib/cli.py)."""

from llmlib.cli import main

raise SystemExit(main())
