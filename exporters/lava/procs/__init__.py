"""Lava processes and ProcessModels emsdeploy adds (kept in their own folder: Lava's compiler
imports every module beside a Process class when it looks for ProcessModels).

The public names are those of :mod:`.processes` (its ``__all__``, listed once)."""

from .processes import *  # noqa: F403
from .processes import __all__ as __all__
