"""Cross-robot micro-batching: concurrent clients get exactly what they get without batching."""

from __future__ import annotations

import threading

import numpy as np
from server_fakes import SlowPolicy, make_observation

from stare_robot.client import PolicyClient

CLIENTS = 4
STEPS = 5

pytest_plugins = ["server_fixtures"]  # serve, shared_server


def run_clients(url: str, transport: str) -> dict[int, list[np.ndarray]]:
    """CLIENTS robots in closed loop (send, wait, send ...), each with its own observations."""
    results: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def robot(i: int) -> None:
        try:
            rng = np.random.default_rng(100 + i)
            obs = [make_observation(rng, instruction=f"robot {i} step {t}") for t in range(STEPS)]
            with PolicyClient(url, transport=transport, timeout=20) as client:
                start.wait(10)
                results[i] = [client.predict(o) for o in obs]
        except BaseException as e:  # noqa: BLE001 (surfaced in the main thread below)
            errors.append(e)

    threads = [threading.Thread(target=robot, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def test_batched_answers_equal_unbatched_answers(serve):
    unbatched_policy = SlowPolicy(delay_s=0.02)
    batched_policy = SlowPolicy(delay_s=0.02)
    off = serve(unbatched_policy)
    on = serve(batched_policy, max_batch_size=CLIENTS, batch_wait_ms=5.0)
    for transport in ("http", "websocket"):
        want = run_clients(off.url, transport)
        got = run_clients(on.url, transport)
        for i in range(CLIENTS):
            for t in range(STEPS):
                assert np.array_equal(got[i][t], want[i][t]), (transport, i, t)
        # each robot's answers differ from the others' (a mixed-up batch would be caught)
        assert not np.array_equal(got[0][0], got[1][0])
    assert unbatched_policy.batch_sizes == []  # batching off never calls predict_batch
    assert max(batched_policy.batch_sizes) > 1, "batching on should have shared forward passes"
