"""Energy profiles are data files with a source for every constant; bad files are clear errors."""

from __future__ import annotations

import pytest

from emsdeploy.energy import COSTS, ProfileError, builtin_profiles, load_profile

GOOD = """
name = "mine"
description = "my chip"
[costs.ac]
pj = 1.5
source = "datasheet p. 3"
[costs.mac]
pj = 6
source = "datasheet p. 3"
[costs.weight_read]
pj = 2.0
source = "datasheet p. 4"
note = "per 8-bit weight"
"""


def test_shipped_profiles_carry_the_published_constants_and_sources():
    assert {"45nm-fp32", "45nm-int8", "loihi", "45nm-fp32-memory"} <= set(builtin_profiles())
    fp32, int8, loihi, mem = (load_profile(n) for n in ("45nm-fp32", "45nm-int8", "loihi", "45nm-fp32-memory"))
    assert (fp32.pj("mac"), fp32.pj("ac")) == (4.6, 0.9)
    assert (int8.pj("mac"), int8.pj("ac")) == (0.23, 0.03)
    assert (loihi.pj("ac"), loihi.pj("active_neuron_update")) == (23.6, 81.0)
    assert mem.pj("weight_read") > 0 and mem.pj("membrane_read") > 0 and mem.pj("membrane_write") > 0
    for prof in (fp32, int8, loihi, mem):
        assert all(c.source for c in prof.costs.values())
        assert set(prof.costs) <= set(COSTS)
    assert "Horowitz" in fp32.costs["mac"].source and "Davies" in loihi.costs["ac"].source


def test_unpriced_costs_are_zero_and_listed_and_ann_mac_defaults_to_mac():
    fp32 = load_profile("45nm-fp32")
    assert fp32.pj("weight_read") == 0.0 and "weight_read" in fp32.unpriced
    assert fp32.pj("ann_mac") == 4.6
    assert load_profile("loihi").pj("ann_mac") == 4.6  # the ANN baseline runs on a 45 nm fp32 array
    assert fp32.to_dict()["not_priced"] == fp32.unpriced


def test_a_users_own_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    prof = load_profile(str(path))
    assert prof.name == "mine" and prof.pj("mac") == 6.0 and prof.costs["weight_read"].note == "per 8-bit weight"


def test_unknown_profile_names_the_shipped_ones():
    with pytest.raises(ProfileError, match=r"unknown energy profile 'nope'; shipped profiles: .*45nm-fp32"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile("missing/file.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x\n', "not valid TOML"),
        ("[costs.ac]\npj = 1\nsource = 's'\n", "needs a name"),
        ('name = "x"\n', r"needs a \[costs.<name>\] table"),
        ('name = "x"\n[costs.ac]\npj = 1\nsource = "s"\n', r"missing \[costs.mac\]"),
        ('name = "x"\n[costs.ac]\npj = -1\nsource = "s"\n', "pj must be a finite number >= 0"),
        ('name = "x"\n[costs.ac]\npj = "cheap"\nsource = "s"\n', "pj must be a finite number"),
        ('name = "x"\n[costs.ac]\npj = 1\n', r"\[costs.ac\]: needs source"),
        ('name = "x"\n[costs.teleport]\npj = 1\nsource = "s"\n', "unknown cost; known costs: ac, mac"),
        ('name = "x"\n[costs.ac]\npj = 1\nsource = "s"\nunit = "fJ"\n', "unknown key 'unit'"),
        ('name = "x"\nvoltage = 0.9\n', "unknown entry 'voltage'"),
        ('name = "x"\ncosts = 3\n', r"needs a \[costs.<name>\] table"),
    ],
)
def test_malformed_files_are_explained(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as e:
        load_profile(path)
    assert str(path) in str(e.value)
