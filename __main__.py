"""Pulumi entry point (`pulumi up --stack dev|staging|production`): settings first, then resources.

Settings are validated before anything is registered, so a broken stack file fails with one
message listing every problem and leaves no half-made deployment behind.
"""

from infra.program import run
from stacks import load_settings

run(load_settings())
