"""Record ``pinned_maps.json``, what ``test_fit_pinned.py`` compares against, from a reference tree.

The pins say "this change moved no map": record them with the code *before* the change, then run
the test with the code after it. When the lowering itself changes on purpose (a new quantization
rule moves the map), record them again from that tree:

    REF/.venv/bin/python tests/fit/record_pins.py REF > tests/fit/pinned_maps.json

with REF the reference checkout and its own Python (its editable install maps models/,
exporters/ and simulators/ into ``emsdeploy``); its ``emsdeploy`` and ``tests.loihi_cases`` are
imported (``emsdeploy.cli.cmd_fit.fit_loaded`` and ``spike_counts``: main has them since issue 17).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

CHIPS = ("loihi1", "loihi2")


def digest(rep: Any, est: dict) -> dict:
    """What is pinned of a fit: totals, per layer (cores, binding, tile, traffic), and the traffic."""
    return {
        "totals": {"cores": rep.cores, "chips": rep.chips, "board": rep.board, "errors": len(rep.errors)},
        "layers": [
            [r.name, r.cores, r.binding, r.tile[0], r.tile[1], r.spikes, r.messages, r.chip_messages, r.sops]
            for r in rep.layers
        ],
        "traffic": {k: est[k] for k in ("sops", "neuron_updates", "messages", "chip_messages")},
    }


def main(root: str) -> str:
    sys.path.insert(0, root)
    from emsdeploy.cli.cmd_fit import fit_loaded, spike_counts
    from emsdeploy.energy import load_profile
    from emsdeploy.exporters.lava.fit import estimate, fit, load_chip
    from emsdeploy.models import DEFAULT_CHECKPOINT
    from emsdeploy.pipeline import load_graph
    from tests.loihi_cases import lowered, mixed_graph

    out = {}
    loaded = load_graph(DEFAULT_CHECKPOINT)
    for chip in CHIPS:
        out[f"shipped/{chip}"] = digest(*fit_loaded(loaded, load_chip(chip)))
    prof = load_profile("loihi")
    q = lowered(mixed_graph(size=16), relay_above=0)
    counts = spike_counts(q, None)
    for chip in CHIPS:
        rep = fit(q, load_chip(chip), counts)
        out[f"mixed-relayed/{chip}"] = digest(rep, estimate(rep, prof.pj("ac"), prof.pj("active_neuron_update")))
    text = json.dumps(out, indent=1)
    return re.sub(r"\[\n\s+([^\[\]]*?)\n\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "."))
