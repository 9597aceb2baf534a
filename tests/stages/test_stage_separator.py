"""The separator: hand-derived labels, monotone rule, batch == per episode, tracker == segment,
and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stage_synthetic import BUILDERS, random_trajectory

from stare_robot import keys, stages
from stare_robot.stages import StageTracker, TrajectoryError

FAMILIES = sorted(BUILDERS)


def track(family, traj, with_potentials=False, **kwargs):
    """Feed ``traj`` step by step; the labels (and the online potentials if asked)."""
    tracker = StageTracker(family, **kwargs)
    n = len(next(iter(traj.values())))
    labels, phis = [], []
    for t in range(n):
        labels.append(tracker.update({k: v[t] for k, v in traj.items()}))
        phis.append(tracker.potential)
    return (np.array(labels), np.array(phis)) if with_potentials else np.array(labels)


@pytest.mark.parametrize("family", FAMILIES)
def test_segment_matches_hand_derived_stages(family):
    traj, expected = BUILDERS[family]()
    assert stages.segment(family, traj).tolist() == expected.tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_tracker_gives_segment_labels_on_every_step(family):
    traj, expected = BUILDERS[family]()
    assert track(family, traj).tolist() == expected.tolist()


def test_never_meeting_an_exit_stays_in_the_stage():
    traj, _ = BUILDERS["pick_place"]()
    traj = dict(traj)
    traj[keys.SIM_IS_GRASPED] = np.zeros(len(traj[keys.SIM_CONTACT]), dtype=bool)  # never grasps
    stage = stages.segment("pick_place", traj)
    assert stage.tolist() == [0, 0, 0] + [1] * 9  # touched at step 3, stuck in grasp


def test_one_stage_per_step_when_several_exits_hold_at_once():
    # push: at step 0 the TCP is already at the push point, the cube already moved and is in goal
    n = 5
    traj = {
        keys.OBS_EE_POSE: np.tile([0.07, 0, 0.02, 1, 0, 0, 0], (n, 1)),
        keys.SIM_OBJ_POSE: np.tile([0.1, 0, 0.02, 1, 0, 0, 0], (n, 1)),
        keys.SIM_GOAL_POS: np.tile([0.15, 0, 0.02], (n, 1)),
        keys.SIM_CONTACT: np.ones(n, dtype=bool),
    }
    traj[keys.SIM_OBJ_POSE][1:, 0] = 0.12  # moved 2 cm after step 0
    assert stages.segment("push_pull", traj).tolist() == [1, 2, 3, 3, 3]
    assert track("push_pull", traj).tolist() == [1, 2, 3, 3, 3]


def test_stages_never_go_back_when_conditions_undo():
    traj, _ = BUILDERS["pick_place"]()
    traj = dict(traj)
    grasped = traj[keys.SIM_IS_GRASPED].copy()
    grasped[6:] = False  # drops the cube mid-transport (it stays where it is)
    traj[keys.SIM_IS_GRASPED] = grasped
    stage = stages.segment("pick_place", traj)
    assert np.all(np.diff(stage) >= 0)
    assert stage[6] == 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), family=st.sampled_from(FAMILIES), mask_bits=st.integers(0, 15))
def test_random_trajectories_tracker_equals_segment_and_monotone(seed, family, mask_bits):
    rng = np.random.default_rng(seed)
    traj = random_trajectory(family, rng, int(rng.integers(1, 40)))
    stage = stages.segment(family, traj)
    assert np.all(np.diff(stage) >= 0) and np.all(np.diff(stage) <= 1)
    assert stage.min() >= 0 and stage.max() < stages.get_family(family).num_stages
    mask = [(mask_bits >> i) & 1 == 1 for i in range(stages.get_family(family).num_stages)]
    online, phi = track(family, traj, with_potentials=True, mask=mask)
    assert np.array_equal(online, stage)
    np.testing.assert_allclose(phi, stages.potentials(family, traj, mask=mask), atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), family=st.sampled_from(FAMILIES))
def test_batch_of_episodes_equals_each_episode_alone(seed, family):
    rng = np.random.default_rng(seed)
    episodes = [random_trajectory(family, rng, int(rng.integers(1, 25))) for _ in range(4)]
    lengths = [len(e[keys.OBS_EE_POSE]) for e in episodes]
    batch = {k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}
    seg = stages.run_separator(family, batch, lengths)
    alone = [stages.run_separator(family, e) for e in episodes]
    assert np.array_equal(seg.stage, np.concatenate([a.stage for a in alone]))
    assert np.array_equal(seg.transitions, np.concatenate([a.transitions for a in alone]))
    np.testing.assert_allclose(
        stages.potentials(seg), np.concatenate([stages.potentials(a) for a in alone])
    )
    np.testing.assert_allclose(
        stages.stage_costs(seg), np.concatenate([stages.stage_costs(a) for a in alone]), equal_nan=True
    )


def test_transitions_and_furthest_stage():
    traj, _ = BUILDERS["stack"]()
    seg = stages.run_separator("stack", traj)
    assert seg.transitions.tolist() == [[2, 3, 5]]
    assert seg.furthest_stage.tolist() == [3]


# --- bad input ---------------------------------------------------------------------------------


def test_missing_field_names_the_field_and_the_family():
    traj, _ = BUILDERS["stack"]()
    del traj[keys.SIM_TARGET_POSE]
    with pytest.raises(TrajectoryError) as err:
        stages.segment("stack", traj)
    assert keys.SIM_TARGET_POSE in str(err.value) and "'stack'" in str(err.value)
    with pytest.raises(TrajectoryError, match="sim/target_pose"):
        track("stack", traj)


def test_gripper_family_names_both_alternative_signals():
    traj, _ = BUILDERS["gripper"]()
    del traj[keys.OBS_GRIPPER]
    with pytest.raises(TrajectoryError) as err:
        stages.segment("gripper", traj)
    assert keys.OBS_GRIPPER in str(err.value) and keys.ACTION in str(err.value)


def test_wrong_shape_and_length_mismatch_are_named():
    traj, _ = BUILDERS["push_pull"]()
    bad = dict(traj, **{keys.OBS_EE_POSE: traj[keys.OBS_EE_POSE][:, :3]})
    with pytest.raises(TrajectoryError, match=r"obs/ee_pose.*\(T, 7\)"):
        stages.segment("push_pull", bad)
    short = dict(traj, **{keys.SIM_CONTACT: traj[keys.SIM_CONTACT][:-1]})
    with pytest.raises(TrajectoryError, match="disagree on the number of steps"):
        stages.segment("push_pull", short)
    with pytest.raises(ValueError, match="lengths sum to 3"):
        stages.segment("push_pull", traj, lengths=[1, 2])


def test_unknown_family_lists_the_valid_ones():
    traj, _ = BUILDERS["push_pull"]()
    with pytest.raises(KeyError) as err:
        stages.segment("pushpull", traj)
    assert "push_pull" in str(err.value) and "lift_upright" in str(err.value)
