"""Offline diff: what `pulumi up` would change, from the desired state at a git ref to the working
tree, without an engine or a cloud.

Both sides are rendered with their own code (`python -m infra render` in a subprocess; the base in
a temporary `git worktree` of the ref) and compared resource by resource. A resource is
identified as the engine identifies it, by its URN or an alias (from each side's `index.json`;
by its rendered file when the base predates it), and is classified as `pulumi preview` would:
create, update, delete, or replace when a changed property cannot be updated in place, by the
providers' own rules (replacements.py). Property changes are listed like `pulumi preview
--diff`: path, old => new, lists by index, Terraform sets by element.

Secrets never show: the render already redacts them, values of a Kubernetes Secret's `data` and
`stringData` are masked even when plain, and a change touching a redacted value masks both sides.
Both sides' secrets carry a digest keyed for this comparison only, so a secret that changed is
shown as changed.

Exit codes: 0 no changes, 3 changes, 2 error (unknown ref, a base that fails to render, bad flags).
"""

from infra.offline.diff.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_NO_CHANGES
from infra.offline.diff.formats import FORMATS, format_markdown, format_text, to_json
from infra.offline.diff.model import Change, DiffError, ResourceDiff, StackDiff
from infra.offline.diff.tree import diff_stack, format_path, load_rendered
from infra.offline.diff.worktree import diff_dir, diff_ref

__all__ = [
    "EXIT_CHANGES",
    "EXIT_ERROR",
    "EXIT_NO_CHANGES",
    "FORMATS",
    "Change",
    "DiffError",
    "ResourceDiff",
    "StackDiff",
    "diff_dir",
    "diff_ref",
    "diff_stack",
    "format_markdown",
    "format_path",
    "format_text",
    "load_rendered",
    "to_json",
]
