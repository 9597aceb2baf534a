"""One rule set (stare_robot.validation): the same bad observation gets the same complaint
in-process, from the server (HTTP msgpack and websocket) and from the client; a bad chunk is
refused by the server, the deploy executor and the arm commander alike."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from server_fakes import CAMERA, MixingPolicy, make_metadata, make_observation
from stare_robot.server import ServerSettings, create_app
from stare_robot.server.runner import BackgroundServer
from websockets.sync.client import connect

from stare_robot import keys, wire
from stare_robot.client import PolicyClient, PolicyObservationError, PolicyServerError
from stare_robot.deploy.executor import ChunkExecutor
from stare_robot.policies.base import ObservationError, check_observation
from stare_robot.robots.commander import ActionError, check_action
from stare_robot.validation import ChunkError, validate_chunk, validate_observation

STATE = keys.OBS_STATE
META = make_metadata()


def bad(**changes) -> dict:
    obs = make_observation(np.random.default_rng(0))
    for k, v in changes.items():
        if v is None:
            del obs[k]
        else:
            obs[k] = v
    return obs


# (case, observation, words the one complaint must contain)
BAD_OBSERVATIONS = [
    ("missing camera", bad(**{CAMERA: None}), [CAMERA, "missing"]),
    ("missing instruction", bad(instruction=None), ["instruction", "missing"]),
    ("state too short", bad(**{STATE: np.zeros(7, np.float32)}), [STATE, "(7,)", "(8,)"]),
    ("float image", bad(**{CAMERA: np.zeros((32, 24, 3), np.float32)}), [CAMERA, "uint8"]),
    ("bool state", bad(**{STATE: np.zeros(8, bool)}), [STATE, "float32", "bool"]),
    ("nan in state", bad(**{STATE: np.array([0, np.nan, 0, 0, 0, 0, 0, 0], np.float32)}),
     [STATE, "non-finite"]),
    ("inf in state", bad(**{STATE: np.full(8, np.inf, np.float32)}), [STATE, "non-finite"]),
    ("blank instruction", bad(instruction="   "), ["instruction", "empty"]),
    ("instruction not a string", bad(instruction=5), ["instruction", "string"]),
    ("huge instruction", bad(instruction="x" * 5000), ["instruction", "2048"]),
]
IDS = [c[0] for c in BAD_OBSERVATIONS]


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(ServerSettings(port=0), policy=MixingPolicy())) as srv:
        yield srv


@pytest.mark.parametrize("case, obs, words", BAD_OBSERVATIONS, ids=IDS)
def test_the_same_bad_observation_gets_the_same_complaint_everywhere(server, case, obs, words):
    with pytest.raises(ObservationError) as in_process:
        check_observation(obs, META)
    said = str(in_process.value)
    for word in words:
        assert word in said, f"{word!r} not in {said!r}"
    with pytest.raises(ObservationError) as validated:
        validate_observation(obs, META)
    assert str(validated.value) == said

    r = httpx.post(f"{server.url}/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: obs}),
                   headers={"content-type": wire.MSGPACK_CONTENT_TYPE})
    assert r.status_code == 422 and r.json()["detail"] == said

    with connect(server.url.replace("http://", "ws://") + "/v1/stream", open_timeout=5) as ws:
        ws.recv(timeout=5)  # metadata
        ws.send(wire.packb(obs))
        reply = json.loads(ws.recv(timeout=5))
    assert reply["status"] == 422 and reply["detail"] == said

    for transport in ("websocket", "http"):
        with PolicyClient(server.url, transport=transport) as client, \
                pytest.raises(PolicyObservationError) as err:
            client.predict(obs)
        assert err.value.detail == said and err.value.status == 422


def test_extra_keys_are_ignored_everywhere(server):
    obs = make_observation(np.random.default_rng(1))
    noisy = {**obs, "sim/extra": np.zeros(3), "obs/joint_pos": [1.0, 2.0]}
    check_observation(noisy, META)
    assert set(validate_observation(noisy, META)) == set(obs)
    want = MixingPolicy().predict(obs)
    r = httpx.post(f"{server.url}/v1/act", content=wire.packb({keys.WIRE_OBSERVATION: noisy}),
                   headers={"content-type": wire.MSGPACK_CONTENT_TYPE})
    assert r.status_code == 200 and np.array_equal(wire.unpackb(r.content)["actions"], want)
    with PolicyClient(server.url) as client:
        assert np.array_equal(client.predict(noisy), want)


# --- chunks ---

GOOD = np.zeros((META.chunk_size, META.action_dim), np.float32)
nan_chunk = GOOD.copy()
nan_chunk[1, 2] = np.nan
# (case, chunk, word of the chunk complaint, word of the commander's for one step of it;
# None: that step is a valid action)
BAD_CHUNKS = [
    ("nan", nan_chunk, "non-finite", "non-finite"),
    ("inf", np.full_like(GOOD, -np.inf), "non-finite", "non-finite"),
    ("wrong shape (3-D)", GOOD[None], "shape", "7 values"),
    ("wrong shape (1-D)", GOOD[0], "shape", None),
    ("wrong dim", np.zeros((META.chunk_size, 6), np.float32), "shape", "7 values"),
    ("not numbers", np.array([["a"] * 7] * 4), "numbers", "numbers"),
]
CHUNK_IDS = [c[0] for c in BAD_CHUNKS]


class ChunkPolicy(MixingPolicy):
    """Returns whatever chunk the test put in ``out``."""

    out = GOOD

    def predict(self, obs):
        return self.out


@pytest.fixture(scope="module")
def chunk_server():
    policy = ChunkPolicy()
    with BackgroundServer(create_app(ServerSettings(port=0), policy=policy)) as srv:
        srv.policy = policy
        yield srv


@pytest.mark.parametrize("case, chunk, word, step_word", BAD_CHUNKS, ids=CHUNK_IDS)
def test_a_bad_chunk_is_refused_by_the_server_the_executor_and_the_commander(chunk_server, case,
                                                                              chunk, word,
                                                                              step_word):
    with pytest.raises(ChunkError, match=word):
        validate_chunk(chunk, META.action_dim, chunk_size=META.chunk_size)
    # the server: the model's bad output is a 500 naming it, never sent to the robot as actions
    chunk_server.policy.out = chunk
    try:
        with PolicyClient(chunk_server.url, retries=0) as client, \
                pytest.raises(PolicyServerError, match=word) as err:
            client.predict(make_observation(np.random.default_rng(0)))
        assert err.value.status == 500
    finally:
        chunk_server.policy.out = GOOD
    # the deploy executor: the same words, and nothing queued
    executor = ChunkExecutor(action_dim=META.action_dim)
    with pytest.raises(ValueError, match=word):
        executor.load(chunk)
    assert len(executor) == 0
    # the arm commander takes one step of a chunk at a time (row 1 of a 2-D one)
    step = chunk[1] if chunk.ndim == 2 else chunk
    if step_word is None:
        assert check_action(step).shape == (META.action_dim,)
    else:
        with pytest.raises(ActionError, match=step_word):
            check_action(step)
    executor.load(GOOD)
    assert len(executor) == META.chunk_size


@pytest.mark.parametrize("action, word", [([0.1] * 6, "7 values"), ([0.1] * 14, "7 values"),
                                          ([0, 0, np.nan, 0, 0, 0, 1], "non-finite"),
                                          (["a"] * 7, "numbers")])
def test_commander_refuses_wrong_dim_and_nan_with_the_shared_rules(action, word):
    with pytest.raises(ActionError, match=word):
        check_action(action)
    np.testing.assert_array_equal(check_action([0.0] * 7), np.zeros(7))
