"""Hold-on-fault chunk execution (no ROS): chunks run step by step; any fault holds, never
repeats an old action; the next good answer resumes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from stare_robot.deploy.executor import ChunkExecutor, ControlLoop
from stare_robot.deploy.pairing import StaleObservation
from stare_robot.keys import GRIPPER_CLOSED, GRIPPER_OPEN


class ScriptedPolicy:
    """Answers from a script: an array (the chunk), an exception (raised), or an Event (blocks
    until set, then answers the next item)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = 0

    def predict(self, obs):
        self.calls += 1
        item = self.script.pop(0)
        if isinstance(item, threading.Event):
            item.wait(5)
            item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


def chunk(start: float, n: int = 3, gripper: float = -1.0) -> np.ndarray:
    c = np.zeros((n, 7), np.float32)
    c[:, 0] = start + np.arange(n)
    c[:, 6] = gripper
    return c


OBS = {"obs/state": np.zeros(18)}


def test_chunk_runs_step_by_step_then_asks_again():
    policy = ScriptedPolicy([chunk(1), chunk(10)])
    loop = ControlLoop(policy, wait_s=2.0)
    xs = [loop.tick(t, OBS).action[0] for t in range(5)]
    assert xs == [1, 2, 3, 10, 11] and policy.calls == 2
    assert loop.status.actions_sent == 5 and loop.status.holds_sent == 0


@pytest.mark.parametrize("bad", [np.full((3, 7), np.nan), np.zeros((3, 6)), "garbage",
                                 ConnectionError("server down")])
def test_fault_holds_with_last_gripper_then_resumes(bad):
    policy = ScriptedPolicy([chunk(1, n=1, gripper=-1.0), bad, chunk(5, n=2, gripper=1.0)])
    loop = ControlLoop(policy, wait_s=2.0, retry_period_s=1.0)
    assert loop.tick(0.0, OBS).action[0] == 1
    held = loop.tick(1.0, OBS)
    assert held.hold and np.array_equal(held.action, [0, 0, 0, 0, 0, 0, -1.0])
    assert loop.status.faults == 1 and loop.status.holding
    again = loop.tick(1.5, OBS)  # within the retry period: still holding, no new request
    assert again.hold and policy.calls == 2
    resumed = loop.tick(2.5, OBS)
    assert not resumed.hold and resumed.action[0] == 5 and not loop.status.holding


def test_slow_server_holds_every_tick_and_late_answer_is_discarded():
    gate = threading.Event()
    policy = ScriptedPolicy([gate, chunk(100), chunk(7)])
    loop = ControlLoop(policy, wait_s=0.01, request_timeout_s=0.05)
    first = loop.tick(0.0, OBS)
    assert first.hold and first.reason == "waiting for the server"
    import time
    time.sleep(0.08)
    slow = loop.tick(0.1, OBS)
    assert slow.hold and "server slow" in slow.reason
    gate.set()
    loop.predictor.wait(2)
    fresh = loop.tick(0.2, OBS)  # the late chunk(100) is thrown away; a new request answers
    assert not fresh.hold and fresh.action[0] == 7 and policy.calls == 2


def test_stale_observation_drops_rest_of_chunk():
    policy = ScriptedPolicy([chunk(1), chunk(20)])
    loop = ControlLoop(policy, wait_s=2.0)
    assert loop.tick(0, OBS).action[0] == 1
    stale = loop.tick(1, StaleObservation("joint_states is 300 ms old"))
    assert stale.hold and "300 ms" in stale.reason
    assert loop.tick(2, OBS).action[0] == 20  # not 2: the old chunk was never finished blind


def test_lockstep_sends_nothing_while_waiting():
    gate = threading.Event()
    loop = ControlLoop(ScriptedPolicy([gate, chunk(3)]), wait_s=0.01, request_timeout_s=10,
                       lockstep=True)
    waiting = loop.tick(0, OBS)
    assert waiting.hold and waiting.action is None  # in lock-step any command is a physics step
    gate.set()
    loop.predictor.wait(2)
    assert loop.tick(0.1, OBS).action[0] == 3


@pytest.mark.parametrize("bad", [np.full((3, 7), np.nan), ConnectionError("server down")])
def test_lockstep_fault_holds_by_sending_nothing(bad):
    policy = ScriptedPolicy([chunk(1, n=1), bad, chunk(5)])
    loop = ControlLoop(policy, wait_s=2.0, retry_period_s=1.0, lockstep=True)
    assert loop.tick(0.0, OBS).action[0] == 1
    held = loop.tick(1.0, OBS)
    assert held.hold and held.action is None and loop.status.faults == 1
    assert loop.status.holds_sent == 0
    assert loop.tick(2.5, OBS).action[0] == 5


def test_lockstep_stale_observation_waits_then_resumes_the_same_chunk():
    policy = ScriptedPolicy([chunk(1), chunk(20)])
    loop = ControlLoop(policy, wait_s=2.0, lockstep=True, sensor_grace_s=1.0)
    assert loop.tick(0, OBS).action[0] == 1
    brief = loop.tick(0.1, StaleObservation("image stamp is 50 ms from the joint state's"))
    assert brief.action is None and brief.reason.startswith("waiting") and loop.status.faults == 0
    # the physics waited with the robot: the chunk goes on where it stopped, no new request
    assert loop.tick(0.2, OBS).action[0] == 2 and policy.calls == 1
    loop.tick(1.0, StaleObservation("no image message received yet"))
    lasting = loop.tick(2.5, StaleObservation("no image message received yet"))
    assert lasting.action is None and "stale observation" in lasting.reason  # now a reported fault
    assert loop.status.faults == 1


def test_lockstep_keeps_an_answer_that_came_after_the_timeout():
    gate = threading.Event()
    policy = ScriptedPolicy([gate, chunk(100)])
    loop = ControlLoop(policy, wait_s=0.01, request_timeout_s=0.05, lockstep=True)
    assert loop.tick(0.0, OBS).action is None
    import time
    time.sleep(0.08)
    slow = loop.tick(0.1, OBS)
    assert slow.action is None and "server slow" in slow.reason
    gate.set()
    loop.predictor.wait(2)
    assert loop.tick(0.2, OBS).action[0] == 100 and policy.calls == 1  # the world waited too


def test_validate_rejects_inf_and_huge():
    ex = ChunkExecutor()
    with pytest.raises(ValueError, match="NaN or infinite"):
        ex.validate(np.full((1, 7), np.inf))
    with pytest.raises(ValueError, match="beyond"):
        ex.validate(np.full((1, 7), 1e9))


def test_one_fault_counts_once_though_its_details_change_every_tick():
    loop = ControlLoop(ScriptedPolicy([]), wait_s=0.0)
    for age in (300, 350, 400):
        loop.tick(age / 1000, StaleObservation(f"image is {age} ms old"))
    assert loop.status.faults == 1 and "400 ms" in loop.status.reason
    loop.tick(1.0, StaleObservation("no joint_states message received yet"))
    assert loop.status.faults == 1  # still the same kind: a stale observation


def test_execute_steps_runs_only_the_head_of_each_chunk():
    # as `stare-robot eval --execute-steps 2`: steps 1, 2 of the first chunk, then 10, 11
    policy = ScriptedPolicy([chunk(1, n=4), chunk(10, n=4), chunk(20, n=4)])
    loop = ControlLoop(policy, wait_s=2.0, execute_steps=2)
    xs = [loop.tick(t, OBS).action[0] for t in range(5)]
    assert xs == [1, 2, 10, 11, 20] and policy.calls == 3
    with pytest.raises(ValueError, match="execute_steps"):
        ControlLoop(policy, execute_steps=0)


def test_reset_forgets_the_queued_steps_and_reopens_the_hold_gripper():
    policy = ScriptedPolicy([chunk(1, n=4, gripper=GRIPPER_CLOSED), chunk(50)])
    loop = ControlLoop(policy, wait_s=2.0)
    assert loop.tick(0.0, OBS).action[0] == 1  # three steps of the old chunk still queued
    loop.reset()
    assert np.array_equal(loop.executor.hold_action(), [0, 0, 0, 0, 0, 0, GRIPPER_OPEN])
    assert loop.tick(1.0, OBS).action[0] == 50  # asks again instead of running step 2


def test_reset_discards_the_answer_to_a_request_of_the_old_episode():
    gate = threading.Event()
    policy = ScriptedPolicy([gate, chunk(1), chunk(50)])
    loop = ControlLoop(policy, wait_s=0.01, request_timeout_s=30.0, lockstep=True)
    assert loop.tick(0.0, OBS).action is None  # the server is still thinking
    loop.reset()
    gate.set()  # the old request now answers chunk(1)...
    deadline = time.monotonic() + 5
    while len(policy.script) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.wait_s = 2.0
    assert loop.tick(1.0, OBS).action[0] == 50  # ...and is never executed


def test_a_chunk_reports_the_tag_of_the_observation_it_answered():
    # real time: the answer comes ticks after the request; the chunk belongs to the old observation
    gate = threading.Event()
    loop = ControlLoop(ScriptedPolicy([gate, chunk(1), chunk(5)]), wait_s=0.01, request_timeout_s=30.0)
    assert loop.tick(0.0, OBS, tag="obs@0").hold
    gate.set()
    deadline = time.monotonic() + 5
    while not loop.predictor.wait(0.01) and time.monotonic() < deadline:
        pass
    assert loop.tick(1.0, OBS, tag="obs@1").action[0] == 1
    assert loop.status.chunk_tag == "obs@0"


def test_a_refused_token_holds_as_authentication_failed_and_asks_again_slowly():
    from stare_robot.client import PolicyAuthError

    refused = PolicyAuthError("http://x/v1/act: authentication failed (HTTP 403): invalid token", 403)
    policy = ScriptedPolicy([chunk(1, n=1, gripper=1.0), refused, chunk(5, n=1)])
    loop = ControlLoop(policy, wait_s=2.0, retry_period_s=0.2, auth_retry_period_s=5.0)
    assert loop.tick(0.0, OBS).action[0] == 1
    held = loop.tick(1.0, OBS)
    assert held.hold and held.reason.startswith("authentication failed: ")
    assert np.array_equal(held.action, [0, 0, 0, 0, 0, 0, 1.0])  # still, gripper kept
    assert loop.tick(3.0, OBS).hold and policy.calls == 2  # past retry_period_s: not asked yet
    assert loop.tick(6.5, OBS).action[0] == 5  # after auth_retry_period_s: asked, resumed
