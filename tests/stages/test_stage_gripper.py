"""Gripper-only family and StaKe labels: keyframes, debouncing, targets, motion/skill labels."""

from __future__ import annotations

import numpy as np
import pytest
from stage_synthetic import gripper_trajectory

from stare_robot import keys, stages
from stare_robot.stages import StageTracker


def opening_traj(opening, joints=None):
    opening = np.asarray(opening, dtype=np.float64)
    n = len(opening)
    joints = np.arange(n * 2, dtype=np.float64).reshape(n, 2) if joints is None else joints
    return {keys.OBS_GRIPPER: opening[:, None], keys.OBS_JOINT_POS: joints}


def test_keyframes_where_the_gripper_closes_and_opens():
    traj, _ = gripper_trajectory()
    assert stages.gripper_keyframes(traj) == [4, 10]


def test_chattering_signal_is_debounced():
    # a one-step dip and a one-step bounce while closed are noise, not grasps or releases
    opening = [1, 1, 0.8, 1, 1, 1, 0.5, 0.45, 0.45, 0.6, 0.45, 0.45, 0.45, 0.8, 1.0, 1.0]
    traj = opening_traj(opening)
    assert stages.gripper_keyframes(traj) == [6, 13]
    assert stages.gripper_keyframes(traj, min_hold=1) == [2, 3, 6, 9, 10, 13]
    stage = stages.segment("gripper", traj)
    assert stage.tolist() == [0] * 7 + [1] * 7 + [2] * 2


def test_closing_on_nothing_and_grasping_wide_objects_both_count():
    empty = opening_traj([1, 1, 0.6, 0.2, 0.0, 0.0, 0.0])  # closes fully
    wide = opening_traj([1, 1, 0.85, 0.78, 0.75, 0.75, 0.75])  # stops at 0.75 on a wide object
    assert stages.gripper_keyframes(empty) == [2]
    assert stages.gripper_keyframes(wide) == [2]


def test_release_in_the_last_step_still_counts_offline():
    traj = opening_traj([1, 1, 0.5, 0.45, 0.45, 0.45, 0.7])  # opening starts at the last step
    assert stages.gripper_keyframes(traj) == [2, 6]
    tracker = StageTracker("gripper")
    for t in range(7):
        tracker.update({k: v[t] for k, v in traj.items()})
    assert tracker.keyframes == [2]  # online, the release is not yet confirmed
    # a closed gripper pushed a little apart at the end (a cube pushing the fingers) is no release
    pushed = opening_traj([1, 0.5, 0.2, 0.0, 0.0, 0.0, 0.06])
    assert stages.gripper_keyframes(pushed) == [1]


def test_command_signal_is_used_without_an_opening():
    command = np.array([1, 1, -1, -1, -1, -1, 1, 1, 1], dtype=np.float64)
    n = len(command)
    action = np.zeros((n, 7))
    action[:, 6] = command
    traj = {keys.ACTION: action, keys.OBS_JOINT_POS: np.zeros((n, 3))}
    assert stages.gripper_keyframes(traj) == [2, 6]
    assert stages.segment("gripper", traj).tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2]


def test_motion_skill_labels_follow_the_keyframes():
    traj, _ = gripper_trajectory()
    labels = stages.motion_skill_labels(traj)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    # several grasps: labels alternate, unlike the monotone stages
    twice = opening_traj([1, 1, 0.5, 0.5, 1.0, 1.0, 0.4, 0.4, 0.4])
    assert stages.motion_skill_labels(twice).tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 1]


def test_keyframe_target_is_the_configuration_at_the_next_keyframe():
    traj, _ = gripper_trajectory()
    joints = traj[keys.OBS_JOINT_POS]
    targets = stages.keyframe_targets(traj)
    assert targets.shape == (14, joints.shape[1] + 1)
    for t in range(14):
        nxt = 4 if t < 4 else 10 if t < 10 else 13  # after the last keyframe: the final step
        np.testing.assert_allclose(targets[t, :-1], joints[nxt], rtol=1e-6)
    # the gripper part is the command at that keyframe: closed at 4, open at 10 and at the end
    assert targets[:4, -1].tolist() == [keys.GRIPPER_CLOSED] * 4
    assert targets[4:, -1].tolist() == [keys.GRIPPER_OPEN] * 10


def test_keyframe_targets_without_any_keyframe_point_at_the_last_step():
    traj = opening_traj([1.0] * 5)
    targets = stages.keyframe_targets(traj)
    np.testing.assert_allclose(targets[:, :-1], np.tile(traj[keys.OBS_JOINT_POS][-1], (5, 1)))
    assert np.all(targets[:, -1] == keys.GRIPPER_OPEN)


def test_tracker_reports_confirmed_keyframes_online():
    traj, expected = gripper_trajectory()
    tracker = StageTracker("gripper")
    labels = [tracker.update({k: v[t] for k, v in traj.items()}) for t in range(14)]
    assert labels == expected.tolist()
    assert tracker.keyframes == [4, 10]
    assert tracker.stage_name == "retreat"
    tracker.reset()
    assert tracker.stage == 0 and tracker.keyframes == []


def test_gripper_needs_joint_positions():
    traj, _ = gripper_trajectory()
    del traj[keys.OBS_JOINT_POS]
    with pytest.raises(stages.TrajectoryError, match="'gripper' needs field 'obs/joint_pos'"):
        stages.segment("gripper", traj)


def test_fingers_spread_by_contact_under_a_close_command_are_not_a_release():
    # closed on a cube from step 3; at step 8 a push spreads the fingers by 0.2 while the command
    # still says close (seen in a PushCube demo): no release keyframe, offline or online
    n = 14
    opening = np.array([1.0, 1.0, 1.0, 0.6, 0.46, 0.46, 0.46, 0.46, 0.66, 0.66, 0.66, 0.66, 0.66, 0.66])
    action = np.zeros((n, 7), np.float32)
    action[:, 6] = np.where(np.arange(n) >= 2, keys.GRIPPER_CLOSED, keys.GRIPPER_OPEN)
    traj = {keys.OBS_GRIPPER: opening[:, None].astype(np.float32), keys.ACTION: action,
            keys.OBS_JOINT_POS: np.zeros((n, 3), np.float32)}
    assert stages.gripper_keyframes(traj) == [3]
    tracker = StageTracker("gripper")
    for t in range(n):
        tracker.update({k: v[t] for k, v in traj.items()})
    assert tracker.keyframes == [3]
    # the same rise under an open command is a release
    action[8:, 6] = keys.GRIPPER_OPEN
    assert stages.gripper_keyframes(traj) == [3, 8]
