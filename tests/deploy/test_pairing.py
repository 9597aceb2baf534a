"""Observation pairing: freshness, stamp matching, metadata-driven inputs (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from stare_robot import keys
from stare_robot.deploy import pairing as pr
from stare_robot.policies.base import ArraySpec, PolicyMetadata

RGB = keys.obs_rgb(keys.DEFAULT_CAMERA)


def meta(**inputs) -> PolicyMetadata:
    return PolicyMetadata(name="tiny", version="0", action_space=keys.ACTION_SPACE_EE_DELTA,
                          action_dim=7, chunk_size=4, control_rate_hz=20.0,
                          inputs={k: ArraySpec(*v) for k, v in inputs.items()})


RGB_META = meta(**{RGB: ((64, 64, 3), "uint8"), keys.OBS_STATE: ((18,), "float32")})
STATE_META = meta(**{keys.OBS_STATE: ((18,), "float32"), keys.OBS_ENV_STATE: ((5,), "float32")})


def test_pairer_refuses_missing_old_and_skewed_sources_and_returns_fresh_ones():
    p = pr.ObservationPairer([pr.SOURCE_JOINTS, pr.SOURCE_IMAGE], max_age_s=0.1, max_skew_s=0.02)
    with pytest.raises(pr.StaleObservation, match="no joint_states"):
        p.pair(now=1.0)
    p.update(pr.SOURCE_JOINTS, "q", stamp=5.00, received=1.0)
    with pytest.raises(pr.StaleObservation, match="no image"):
        p.pair(now=1.0)
    p.update(pr.SOURCE_IMAGE, "img", stamp=5.05, received=1.0)
    with pytest.raises(pr.StaleObservation, match="image stamp is 50 ms"):
        p.pair(now=1.0)
    p.update(pr.SOURCE_IMAGE, "img2", stamp=5.01, received=1.0)
    values, stamp = p.pair(now=1.05)
    assert values == {pr.SOURCE_JOINTS: "q", pr.SOURCE_IMAGE: "img2"} and stamp == 5.00
    with pytest.raises(pr.StaleObservation, match="joint_states is 150 ms old"):
        p.pair(now=1.15)


def test_graph_check_refuses_env_state_on_a_real_robot_graph_by_name():
    with pytest.raises(pr.InputUnavailableError, match="obs/env_state.*real robot"):
        pr.check_inputs_available(STATE_META, pr.GraphInputs(camera=keys.DEFAULT_CAMERA))
    assert set(pr.check_inputs_available(STATE_META, pr.GraphInputs(camera=None, env_state=True))) == {
        pr.SOURCE_JOINTS, pr.SOURCE_ENV_STATE}
    with pytest.raises(pr.InputUnavailableError, match="obs/base_camera/rgb.*no camera"):
        pr.check_inputs_available(RGB_META, pr.GraphInputs(camera=None))


def test_build_observation_orders_state_resizes_image_and_derives_gripper():
    m = meta(**{RGB: ((32, 48, 3), "uint8"), keys.OBS_STATE: ((18,), "float32"),
                keys.OBS_GRIPPER: ((1,), "float32")})
    q, v = np.arange(9.0), -np.arange(9.0)
    q[-2:] = [0.01, 0.01]
    img = np.zeros((128, 96, 3), np.uint8)
    img[:, 48:] = 200  # right half bright: must stay on the right after resizing
    obs = pr.build_observation(m, {pr.SOURCE_JOINTS: (q, v), pr.SOURCE_IMAGE: img}, "push",
                               keys.DEFAULT_CAMERA, finger_open_width=0.04)
    assert obs[keys.INSTRUCTION] == "push"
    np.testing.assert_array_equal(obs[keys.OBS_STATE], np.concatenate([q, v]).astype(np.float32))
    assert obs[RGB].shape == (32, 48, 3) and obs[RGB].dtype == np.uint8
    assert obs[RGB][:, :20].max() == 0 and obs[RGB][:, 28:].min() == 200
    np.testing.assert_allclose(obs[keys.OBS_GRIPPER], [0.25])
    with pytest.raises(pr.InputUnavailableError, match="shape \\(14,\\).*\\(18,\\)"):
        pr.build_observation(m, {pr.SOURCE_JOINTS: (q[:7], v[:7]), pr.SOURCE_IMAGE: img}, "",
                             keys.DEFAULT_CAMERA, 0.04)


def test_pairer_clear_forgets_every_source_until_fresh_messages_come():
    p = pr.ObservationPairer([pr.SOURCE_JOINTS], max_age_s=10.0)
    p.update(pr.SOURCE_JOINTS, "old", stamp=3.0, received=1.0)
    assert p.latest(pr.SOURCE_JOINTS).stamp == 3.0
    p.clear()
    assert p.latest(pr.SOURCE_JOINTS) is None
    with pytest.raises(pr.StaleObservation, match="no joint_states"):
        p.pair(now=1.5)
    p.update(pr.SOURCE_JOINTS, "new", stamp=0.0, received=2.0)
    assert p.pair(now=2.5) == ({pr.SOURCE_JOINTS: "new"}, 0.0)


def matcher(**kw) -> pr.StampMatcher:
    return pr.StampMatcher(pr.SOURCE_IMAGE, [pr.SOURCE_JOINTS], optional=[pr.SOURCE_EE_POSE], **kw)


def test_stamp_matcher_waits_for_the_joint_state_of_an_earlier_arriving_image():
    m = matcher(max_skew_s=0.001)
    assert m.add(pr.SOURCE_JOINTS, 0.05, "q@0.05") == []
    # the image of step 0.10 arrives before its joint state: the newest joint state (0.05) is
    # the wrong one, so the frame waits
    assert m.add(pr.SOURCE_IMAGE, 0.10, "rgb@0.10") == []
    assert m.add(pr.SOURCE_JOINTS, 0.10, "q@0.10") == [
        (0.10, {pr.SOURCE_IMAGE: "rgb@0.10", pr.SOURCE_JOINTS: "q@0.10", pr.SOURCE_EE_POSE: None})]
    assert m.unmatched == 0


def test_stamp_matcher_takes_the_nearest_of_the_bracketing_messages_and_drops_far_frames():
    m = matcher(max_skew_s=0.02)
    for t in (0.0, 0.033, 0.066):
        m.add(pr.SOURCE_JOINTS, t, f"q@{t}")
    m.add(pr.SOURCE_EE_POSE, 0.033, "pose@0.033")
    [(_, near_after)] = m.add(pr.SOURCE_IMAGE, 0.030, "a")
    [(_, near_before)] = m.add(pr.SOURCE_IMAGE, 0.040, "b")
    assert near_after[pr.SOURCE_JOINTS] == "q@0.033" and near_before[pr.SOURCE_JOINTS] == "q@0.033"
    assert near_after[pr.SOURCE_EE_POSE] == "pose@0.033"  # optional, present: nearest too
    assert m.add(pr.SOURCE_IMAGE, 0.050, "c")[0][1][pr.SOURCE_JOINTS] == "q@0.066"
    m.add(pr.SOURCE_JOINTS, 0.2, "q@0.2")
    assert m.add(pr.SOURCE_IMAGE, 0.13, "between") == [] and m.unmatched == 1  # 64 ms from both


def test_stamp_matcher_emits_in_stamp_order_and_bounds_the_wait():
    m = matcher(max_skew_s=0.001, max_pending=3)
    for t in (0.1, 0.2, 0.3):
        assert m.add(pr.SOURCE_IMAGE, t, t) == []
    out = m.add(pr.SOURCE_JOINTS, 0.2, "q@0.2")  # 0.1 can no longer be matched; 0.2 can
    assert [t for t, _ in out] == [0.2] and m.unmatched == 1
    # a joint-state stream that stopped: frames wait, but never more than max_pending of them
    for t in (0.4, 0.5, 0.6, 0.7, 0.8):
        m.add(pr.SOURCE_IMAGE, t, t)
    assert len(m._pending) <= 3 and m.unmatched == 1 + 3
    with pytest.raises(ValueError, match="unknown source"):
        m.add("depth", 0.0, None)
