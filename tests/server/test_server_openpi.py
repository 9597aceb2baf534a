"""A real external client: openpi's unmodified ``WebsocketClientPolicy`` (PyPI openpi-client)."""

from __future__ import annotations

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from server_fakes import MixingPolicy, make_observation

from stare_robot import keys

# openpi's client calls websockets' connect() bare, which websockets >= 17.1 flags as deprecated
OPENPI_WARNING = "ignore:connect\\(\\) must be used as a context manager:DeprecationWarning"

pytest_plugins = ["server_fixtures"]  # serve, shared_server


@pytest.mark.filterwarnings(OPENPI_WARNING)
def test_openpi_client_reads_metadata_and_gets_in_process_actions(shared_server):
    host, port = shared_server.url.removeprefix("http://").split(":")
    client = WebsocketClientPolicy(host=host, port=int(port))
    try:
        meta = client.get_server_metadata()
        assert meta["name"] == MixingPolicy().metadata.name and meta["action_dim"] == 7
        for seed in range(3):
            obs = make_observation(np.random.default_rng(seed), instruction=f"openpi {seed}")
            out = client.infer(obs)
            assert np.array_equal(out[keys.WIRE_ACTIONS], MixingPolicy().predict(obs))
            assert out[keys.WIRE_TIMING][keys.TIMING_INFERENCE_MS] > 0
        # a refused observation surfaces as openpi's own error, naming the field
        with pytest.raises(RuntimeError, match=keys.OBS_STATE):
            client.infer({**obs, keys.OBS_STATE: np.zeros(3, np.float32)})
        assert np.array_equal(client.infer(obs)[keys.WIRE_ACTIONS], MixingPolicy().predict(obs))
    finally:
        client._ws.close()  # openpi's client has no close(); its connection is this attribute
