"""Energy reports: exact synaptic-operation counts (:mod:`emsdeploy.simulators.sops`) priced
by an energy profile (data files with sources), beside the papers' formula and the same-shape
ANN. See docs/energy.md for what is counted."""

from ..inputs import InputSet, default_inputs, random_inputs, user_inputs
from .measure import DEFAULT_SAMPLES, counted_graph, measure
from .profiles import COSTS, EnergyProfile, ProfileError, builtin_profiles, load_profile
from .report import DEFINITIONS, INTEGER_MODES, energy_report

__all__ = [
    "COSTS",
    "DEFAULT_SAMPLES",
    "DEFINITIONS",
    "INTEGER_MODES",
    "EnergyProfile",
    "InputSet",
    "ProfileError",
    "builtin_profiles",
    "counted_graph",
    "default_inputs",
    "energy_report",
    "load_profile",
    "measure",
    "random_inputs",
    "user_inputs",
]
