"""The family registry: complete, explicit, helpful errors; the template is a working family."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from stage_synthetic import push_trajectory

from stare_robot import stages
from stare_robot.stages.registry import UnknownFamilyError

STAGES_DIR = Path(stages.__file__).parent


def test_registry_lists_every_family_module():
    # every module (but the template) that registers a family must be imported by __init__
    registered_in_files = set()
    for path in STAGES_DIR.glob("*.py"):
        source = path.read_text()
        if path.name != "template.py" and re.search(r"^@register", source, re.MULTILINE):
            registered_in_files.update(re.findall(r'^    name = "(\w+)"', source, re.MULTILINE))
    assert registered_in_files == set(stages.family_names())
    assert set(stages.family_names()) == {"pick_place", "stack", "push_pull", "lift_upright", "gripper"}


def test_unknown_family_suggests_and_lists_valid_names():
    with pytest.raises(UnknownFamilyError) as err:
        stages.get_family("push_pul")
    message = str(err.value)
    assert "Did you mean 'push_pull'" in message
    for name in stages.family_names():
        assert name in message


def test_unknown_setting_is_named_with_the_valid_ones():
    with pytest.raises(TypeError, match="goal_radiuss.*goal_radius"):
        stages.get_family("push_pull", goal_radiuss=0.2)


def test_every_family_declares_its_contract():
    for name in stages.family_names():
        fam = stages.get_family(name)
        assert fam.name == name
        assert len(fam.stage_names) >= 2 and len(set(fam.stage_names)) == len(fam.stage_names)
        for section in ("Task:", "Stages:", "Success:"):
            assert section in type(fam).__doc__, f"{name} docstring lacks {section}"
        for stage in fam.stage_names:
            assert stage in type(fam).__doc__


def test_template_is_a_working_family_that_is_not_registered():
    from stare_robot.stages.template import TemplateFamily

    assert "template" not in stages.family_names()
    traj, _ = push_trajectory()
    fam = TemplateFamily(touch_distance=0.035, goal_tolerance=0.1)
    stage = stages.segment(fam, traj)
    # TCP within 3.5 cm of the cube from step 3 (3 cm behind it); cube within 0.1 of the goal at 8
    assert stage.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    phi = stages.potentials(fam, traj)
    assert np.all((phi >= 0) & (phi <= 1))
