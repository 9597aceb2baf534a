"""Recorder buffering (no ROS): action alignment, online gripper keyframes/stages, atomic commit,
drop counting when the writer cannot keep up, and reading back with the library reader."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from stare_robot import keys
from stare_robot.data.store import EpisodeStore
from stare_robot.deploy import EpisodeRecorder, RecorderError
from stare_robot.stages import gripper_keyframes


def frame(opening: float, t: int) -> dict:
    q = np.full(9, 0.1 * t, np.float32)
    return {keys.OBS_JOINT_POS: q, keys.OBS_STATE: np.concatenate([q, q]),
            keys.OBS_GRIPPER: np.array([opening], np.float32),
            keys.OBS_EE_POSE: np.zeros(7, np.float32)}


# open for 5 steps, closing over 2, closed 6, opening over 2, open 5
OPENINGS = [1.0] * 5 + [0.6, 0.3] + [0.3] * 6 + [0.7, 1.0] + [1.0] * 5


def test_records_aligned_actions_stages_keyframes_and_commits(tmp_path):
    rec = EpisodeRecorder(tmp_path / "s.zarr", store_attrs={keys.ATTR_ROBOT: "panda"})
    rec.start({keys.ATTR_TASK: "PushCube-v1"})
    for t, g in enumerate(OPENINGS):
        assert rec.add_frame(0.05 * t + 100.0, frame(g, t))
        assert not rec.add_frame(0.05 * t + 100.0, frame(g, t))  # idle re-publish: ignored
        a = np.full(7, t, np.float64)
        rec.add_action(a)
        rec.add_action(a + 1000)  # a second action in the same step is not the step's action
    rec.add_action([np.nan] * 7)
    rec.label(True)
    episode_id = rec.stop()

    ep = EpisodeStore.open(tmp_path / "s.zarr")[episode_id]
    n = len(OPENINGS)
    assert len(ep) == n and rec.dropped == 0
    np.testing.assert_array_equal(ep[keys.ACTION][:][:, 0], np.arange(n))
    ts = ep[keys.TIMESTAMP][:]
    np.testing.assert_allclose(ts, 0.05 * np.arange(n), atol=1e-9)
    traj = {keys.OBS_GRIPPER: np.array(OPENINGS)[:, None], keys.OBS_JOINT_POS: ep[keys.OBS_JOINT_POS][:]}
    assert ep.attrs[keys.ATTR_KEYFRAMES] == gripper_keyframes(traj) == [5, 13]
    stage = ep[keys.STAGE][:]
    assert stage[0] == 0 and stage[-1] == 2 and np.all(np.diff(stage) >= 0)
    assert ep.attrs[keys.ATTR_SUCCESS] is True and ep.attrs[keys.ATTR_STAGE_FAMILY] == "gripper"


def test_unlabelled_last_frame_without_action_and_call_order(tmp_path):
    rec = EpisodeRecorder(tmp_path / "s.zarr")
    with pytest.raises(RecorderError, match="call start"):
        rec.stop()
    rec.start()
    with pytest.raises(RecorderError, match="already recording"):
        rec.start()
    rec.add_frame(0.0, frame(1.0, 0))
    rec.add_frame(0.1, frame(1.0, 1))  # frame 0 got no action: recorded as a hold
    rec.add_frame(0.2, frame(1.0, 2))  # the last frame, no action follows: not recorded
    ep = EpisodeStore.open(tmp_path / "s.zarr")[rec.stop()]
    assert len(ep) == 2 and keys.ATTR_SUCCESS not in ep.attrs
    np.testing.assert_array_equal(ep[keys.ACTION][0], [0, 0, 0, 0, 0, 0, keys.GRIPPER_OPEN])


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path, monkeypatch):
    rec = EpisodeRecorder(tmp_path / "s.zarr", max_queue=3)
    rec.start()
    gate = threading.Event()
    real_update = rec.tracker.update
    monkeypatch.setattr(rec.tracker, "update", lambda step: (gate.wait(10), real_update(step))[1])
    for t in range(12):  # the writer is stuck on frame 0; the queue holds 3 more
        rec.add_frame(float(t), frame(1.0, t))
        rec.add_action(np.zeros(7))
    assert rec.dropped >= 7
    gate.set()
    ep = EpisodeStore.open(tmp_path / "s.zarr")[rec.stop()]
    assert len(ep) + rec.dropped == 12 and len(ep) == rec.written


def test_discarded_episode_never_visible(tmp_path):
    rec = EpisodeRecorder(tmp_path / "s.zarr")
    rec.start()
    for t in range(3):
        rec.add_frame(float(t), frame(1.0, t))
        rec.add_action(np.zeros(7))
    rec.discard()
    assert len(EpisodeStore.open(tmp_path / "s.zarr")) == 0


def test_action_goes_to_the_frame_it_followed_by_receive_time_even_if_handed_over_late(tmp_path):
    # a stamp-paired frame is handed over once its last part arrives, which can be after the
    # action computed from it: the action still belongs to it, not to the frame before
    rec = EpisodeRecorder(tmp_path / "s.zarr")
    rec.start()
    acts = [np.full(7, float(k), np.float32) for k in range(4)]
    rec.add_frame(0.0, frame(1.0, 0), received=10.0)
    rec.add_action(acts[0], received=10.5)
    rec.add_action(acts[1], received=11.2)  # follows frame 1 (first message at 11.0)...
    rec.add_frame(0.1, frame(1.0, 1), received=11.0)  # ...handed over only now
    rec.add_frame(0.2, frame(1.0, 2), received=12.0)
    rec.add_action(acts[3], received=12.9)  # frame 2's, arriving just before frame 3
    rec.add_frame(0.3, frame(1.0, 3), received=13.0)
    rec.add_action(acts[2], received=13.5)  # the last frame's action: it is kept at stop
    ep = EpisodeStore.open(tmp_path / "s.zarr")[rec.stop()]
    np.testing.assert_array_equal(ep[keys.ACTION][:], [acts[0], acts[1], acts[3], acts[2]])


def test_an_action_stamped_with_its_observation_goes_to_that_frame_whatever_the_arrival_order(tmp_path):
    rec = EpisodeRecorder(tmp_path / "s.zarr")
    rec.start()
    acts = [np.full(7, float(k), np.float32) for k in range(4)]
    rec.add_frame(0.0, frame(1.0, 0), received=10.0)
    rec.add_action(acts[0], received=10.5, after_stamp=0.0)
    rec.add_action(acts[1], received=10.6, after_stamp=0.1)  # overtook its own frame's messages
    rec.add_frame(0.1, frame(1.0, 1), received=11.0)
    rec.add_frame(0.2, frame(1.0, 2), received=12.0)  # nothing followed 0.2: a hold
    rec.add_action(acts[3], received=12.5, after_stamp=0.3)
    rec.add_frame(0.3, frame(1.0, 3), received=13.0)
    ep = EpisodeStore.open(tmp_path / "s.zarr")[rec.stop()]
    hold = [0, 0, 0, 0, 0, 0, acts[1][-1]]  # zero motion, the gripper as last commanded
    np.testing.assert_array_equal(ep[keys.ACTION][:], [acts[0], acts[1], hold, acts[3]])
