"""Annotating real Zarr episode stores (library function and the CLI), and `stages show`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from stage_synthetic import BUILDERS

from stare_robot import cli, keys, stages
from stare_robot.data.store import EpisodeStore


def write_store(path, episodes):
    """episodes: list of (traj, attrs). Adds a gripper opening and joints so keyframes exist."""
    store = EpisodeStore.create(path)
    for traj, attrs in episodes:
        n = len(next(iter(traj.values())))
        with store.new_episode(attrs=attrs) as ep:
            for t in range(n):
                ep.append({k: np.asarray(v[t]) for k, v in traj.items()})
    return store


def with_gripper(traj, close_at, n):
    opening = np.ones(n)
    opening[close_at:] = 0.5
    return {**traj, keys.OBS_GRIPPER: opening[:, None], keys.OBS_JOINT_POS: np.zeros((n, 9))}


@pytest.fixture
def pick_store(tmp_path):
    traj, _ = BUILDERS["pick_place"]()
    full = with_gripper(traj, close_at=4, n=12)
    stuck = {k: v[:3] for k, v in full.items()}  # stops before touching the cube
    attrs = {keys.ATTR_STAGE_FAMILY: "pick_place", keys.ATTR_TASK: "PickCube-v1"}
    return write_store(tmp_path / "pick.zarr", [
        (full, {**attrs, keys.ATTR_SUCCESS: True}),
        (stuck, {**attrs, keys.ATTR_SUCCESS: False}),
        ({k: v for k, v in full.items() if not k.startswith("sim/")}, {keys.ATTR_TASK: "real"}),
    ])


def test_annotate_episode_writes_stage_keyframes_and_names(pick_store):
    _, expected = BUILDERS["pick_place"]()
    note = stages.annotate_episode(pick_store, 0)
    ep = EpisodeStore.open(pick_store.root)[0]
    assert ep[keys.STAGE][:].tolist() == expected.tolist() == note.stage.tolist()
    assert ep.attrs[keys.ATTR_KEYFRAMES] == [4]
    assert ep.attrs[keys.ATTR_STAGE_NAMES] == ["reach", "grasp", "transport", "place"]
    assert ep.attrs[keys.ATTR_STAGE_FAMILY] == "pick_place"


def test_annotate_is_idempotent(pick_store):
    stages.annotate_episode(pick_store, 0)
    before = pick_store[0].path
    stages.annotate_episode(pick_store, 0)
    after = EpisodeStore.open(pick_store.root)[0]
    assert after.path == before  # the second run found nothing to change: no new version


def test_explicit_family_replaces_the_episode_family(pick_store):
    """A family passed by the caller is applied, not silently ignored for annotated episodes."""
    stages.annotate_episode(pick_store, 0)
    assert pick_store[0].attrs[keys.ATTR_STAGE_FAMILY] == "pick_place"
    note = stages.annotate_episode(pick_store, 0, family="gripper")
    ep = EpisodeStore.open(pick_store.root)[0]
    assert note.family == ep.attrs[keys.ATTR_STAGE_FAMILY] == "gripper"
    assert ep.attrs[keys.ATTR_STAGE_NAMES] == note.stage_names != ["reach", "grasp", "transport", "place"]
    assert ep[keys.STAGE][:].tolist() == note.stage.tolist()
    # without a family the episode keeps the one it now has (idempotent, no flip back)
    assert stages.annotate_episode(pick_store, 0).family == "gripper"


def test_annotate_trajectory_uses_episode_attrs_for_thresholds():
    traj, expected = BUILDERS["lift_upright"]()
    assert stages.annotate_trajectory(traj, "lift_upright").stage.tolist() == expected.tolist()
    # a 5 cm half size puts the rest height at 0.05: the peg is 1 cm up only at step 4 (0.085)
    # and 5 cm up (the clearance) at step 5
    note = stages.annotate_trajectory(traj, "lift_upright", attrs={keys.SIM_OBJ_HALF_SIZE: 0.05})
    assert note.stage.tolist() == [0, 0, 1, 1, 2, 3, 3, 3]
    assert note.keyframes == []  # no gripper signal in this trajectory


def test_cli_annotate_all_then_show(pick_store, tmp_path, capsys):
    code = cli.main(["stages", "annotate", str(pick_store.root), "--episodes", "0", "1"])
    assert code == 0
    assert "annotated 2 episode(s)" in capsys.readouterr().out
    store = EpisodeStore.open(pick_store.root)
    assert store[1][keys.STAGE][:].tolist() == [0, 0, 0]
    assert keys.STAGE not in store[2]

    # the third episode has neither stage_family nor sim/* fields: the gripper family fits it
    assert cli.main(["stages", "annotate", str(pick_store.root), "--family", "gripper",
                     "--episodes", "2"]) == 0
    assert EpisodeStore.open(pick_store.root)[2].attrs[keys.ATTR_STAGE_FAMILY] == "gripper"

    png = tmp_path / "timeline.png"
    code = cli.main(["stages", "show", str(pick_store.root), "--episodes", "0", "1", "--out", str(png)])
    out = capsys.readouterr().out
    assert code == 0
    pick_block = out.split("family pick_place")[1].split("family ")[0]
    lines = {line.split()[0]: line for line in pick_block.splitlines() if line.startswith("  ")}
    # two pick_place episodes: both reach, only the first gets further
    assert "100%" in lines["reach"] and "50%" in lines["grasp"] and "50%" in lines["place"]
    assert "(1/2)" in lines["grasp"] and "(1/1)" in lines["success"]
    assert "family gripper: 1 episodes" in out
    with Image.open(png) as image:
        assert image.size[0] > 500 and image.size[1] > 300


def test_cli_annotate_family_relabels_annotated_episodes_and_says_so(pick_store, capsys):
    assert cli.main(["stages", "annotate", str(pick_store.root), "--episodes", "0", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["stages", "annotate", str(pick_store.root), "--family", "gripper"]) == 0
    out = capsys.readouterr().out
    assert "annotated 3 episode(s)" in out and "3 with gripper" in out
    assert "2 episode(s) re-labelled pick_place -> gripper (--family)" in out
    store = EpisodeStore.open(pick_store.root)
    assert {store[i].attrs[keys.ATTR_STAGE_FAMILY] for i in range(3)} == {"gripper"}
    # a family that the episode's recorded fields cannot support is refused by name
    assert cli.main(["stages", "annotate", str(pick_store.root), "--family", "push_pull",
                     "--episodes", "2"]) == 2
    assert "stare-robot stages:" in capsys.readouterr().err


def test_cli_show_json_statistics(pick_store, capsys):
    import json

    assert cli.main(["stages", "show", str(pick_store.root), "--family", "gripper", "--json",
                     "--out", str(pick_store.root.parent / "x.png")]) == 0
    stats = json.loads(capsys.readouterr().out)
    rows = {r["stage"]: r for r in stats["pick_place"]["stages"]}
    assert rows["reach"]["mean_length"] == pytest.approx((3 + 3) / 2)
    assert rows["grasp"]["mean_length"] == 2 and rows["grasp"]["reached_fraction"] == 0.5
    assert rows["reach"]["mean_cost"] == pytest.approx(0.02)  # both end 4 cm above the cube


def test_cli_errors_are_clear(pick_store, tmp_path, capsys):
    assert cli.main(["stages", "annotate", str(pick_store.root)]) == 2  # episode 2 has no family
    err = capsys.readouterr().err
    assert "stage_family" in err and "--family" in err
    assert cli.main(["stages", "annotate", str(pick_store.root), "--family", "grip"]) == 2
    assert "Did you mean 'gripper'" in capsys.readouterr().err
    assert cli.main(["stages", "show", str(tmp_path / "missing.zarr")]) == 2
    assert "does not exist" in capsys.readouterr().err
