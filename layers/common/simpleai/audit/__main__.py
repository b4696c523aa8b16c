"""`python -m simpleai.audit`: the audit log's command line (cli.py)."""

from simpleai.audit.cli import main

main()
