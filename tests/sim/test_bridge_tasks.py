"""SimplerEnv-WidowX task table, missing-asset errors and the action mapping (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from stare_robot.sim.bridge_tasks import MissingAssetsError, check_assets, ours_to_widowx
from stare_robot.sim.tasks import TASKS, WIDOWX, get_task

from stare_robot import keys
from stare_robot.robots.ee_action import pose_delta_to_action

# env id -> stage family, from the issue (pick/place; stack for the cubes)
BRIDGE_TASKS = {
    "PutSpoonOnTableClothInScene-v1": "pick_place",
    "PutCarrotOnPlateInScene-v1": "pick_place",
    "StackGreenCubeOnYellowCubeBakedTexInScene-v1": "stack",
    "PutEggplantInBasketScene-v1": "pick_place",
}


def test_table_lists_the_four_widowx_tasks_with_what_other_parts_key_on():
    widowx = {name: spec for name, spec in TASKS.items() if spec.robot == WIDOWX}
    assert {name: spec.stage_family for name, spec in widowx.items()} == BRIDGE_TASKS
    for spec in widowx.values():
        assert spec.env_id == spec.name
        assert spec.camera == "3rd_view_camera"
        assert spec.expert == "scripted" and spec.target_attr
        assert set(spec.assets) == {"widowx250s", "bridge_v2_real2sim"}
    assert get_task("PutEggplantInBasketScene-v1").instruction == "put eggplant into yellow basket"
    # put-on tasks count as placed only once the gripper lets go, as the stack family does
    assert get_task("PutCarrotOnPlateInScene-v1").stage_settings["require_release"] is True


def test_missing_assets_name_the_files_and_the_fixes(tmp_path):
    spec = get_task("PutCarrotOnPlateInScene-v1")
    with pytest.raises(MissingAssetsError) as err:
        check_assets(spec, tmp_path / "data")
    message = str(err.value)
    assert str(tmp_path / "data" / "robots" / "widowx" / "wx250s.urdf") in message
    assert "python -m mani_skill.utils.download_asset widowx250s" in message
    assert "python -m mani_skill.utils.download_asset bridge_v2_real2sim" in message
    assert "MS_ASSET_DIR" in message
    # with the robot present, only the scene is reported missing
    urdf = tmp_path / "data" / "robots" / "widowx" / "wx250s.urdf"
    urdf.parent.mkdir(parents=True)
    urdf.write_text("<robot/>")
    with pytest.raises(MissingAssetsError) as err:
        check_assets(spec, tmp_path / "data")
    assert "download_asset bridge_v2_real2sim" in str(err.value)
    assert "download_asset widowx250s" not in str(err.value)


def test_make_env_and_demos_cli_fail_clearly_without_assets(tmp_path, monkeypatch, capsys):
    """Before ManiSkill's own check, which would prompt for a download and exit()."""
    from stare_robot.sim.demos import main
    from stare_robot.sim.env import make_env

    monkeypatch.setenv("MS_ASSET_DIR", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="download_asset widowx250s"):
        make_env("StackGreenCubeOnYellowCubeBakedTexInScene-v1", sim_backend="physx_cpu")
    out = tmp_path / "never.zarr"
    code = main(["--task", "PutSpoonOnTableClothInScene-v1", "--num", "1", "--out", str(out),
                 "--quiet"])
    assert code == 2
    assert "MS_ASSET_DIR" in capsys.readouterr().err


def test_action_mapping_commands_the_same_motion_as_the_project_convention():
    """A pose change expressed in our normalised action reaches the WidowX controller as that
    change in metres and XYZ Euler radians (its raw input), gripper unchanged."""
    base = np.array([0.147, 0.028, 0.0, 0.0, 0.0, 0.0, 1.0])  # the Bridge WidowX: yawed 180 deg
    current = np.array([-0.15, 0.03, 0.14, 0.0081, -0.7269, 0.0053, 0.6867])
    turn = Rotation.from_euler("z", 0.07)
    wxyz = current[3:] / np.linalg.norm(current[3:])
    target_rot = turn * Rotation.from_quat(np.roll(wxyz, -1))
    target = np.concatenate([current[:3] + [0.02, -0.03, 0.01], np.roll(target_rot.as_quat(), 1)])
    ours = np.append(pose_delta_to_action(current, target, base=base), keys.GRIPPER_CLOSED)

    raw = ours_to_widowx(ours)
    base_rot = Rotation.from_quat(np.roll(base[3:], -1))
    # translation: in the robot-base frame, metres
    np.testing.assert_allclose(base_rot.apply(raw[:3]), [0.02, -0.03, 0.01], atol=1e-6)
    # rotation: the controller left-multiplies the base-frame orientation by euler_XYZ(raw[3:6])
    applied = base_rot * Rotation.from_euler("XYZ", raw[3:6]) * base_rot.inv()
    assert (applied * turn.inv()).magnitude() < 1e-5
    assert raw[6] == keys.GRIPPER_CLOSED
    # batched actions map row by row
    np.testing.assert_allclose(ours_to_widowx(np.stack([ours, ours])), np.stack([raw, raw]))
