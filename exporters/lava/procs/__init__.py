"""Lava processes and ProcessModels emsdeploy adds (kept in their own folder: Lava's compiler
imports every module beside a Process class when it looks for ProcessModels).

The public names are those of :mod:`.processes` (its ``__all__``, listed once)."""

from .._require import prepare_lava_import

prepare_lava_import()  # before lava's first import sets its start method

from .processes import *  # noqa: E402, F403
from .processes import __all__ as __all__  # noqa: E402
