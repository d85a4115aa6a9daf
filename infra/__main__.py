"""`python -m infra render|check|diff|export ...`: the offline tool, whose command line is
`infra.offline.cli`. The Pulumi program itself never imports it."""

from __future__ import annotations

import sys

from infra.offline.cli import main

if __name__ == "__main__":
    sys.exit(main())
