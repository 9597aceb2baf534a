"""The vectorised env on physx_cpu: worker processes that step like the env they wrap, report
their errors, and do not outlive a parent that is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from stare_robot.sim.env import make_env
from stare_robot.sim.vector_env import ProcessVectorEnv, VectorEnvError, make_vector_env

from stare_robot import keys

pytestmark = pytest.mark.sim

SEEDS = (50_000, 50_001)


def _actions(steps: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-0.5, 0.5, size=(steps, len(SEEDS), keys.ACTION_DIM)).astype(np.float32)


def test_workers_step_like_the_single_env_they_wrap():
    actions = _actions(6)
    with make_vector_env("PushCube-v1", len(SEEDS), sim_backend="physx_cpu") as venv:
        assert isinstance(venv, ProcessVectorEnv)
        firsts = venv.reset(range(len(SEEDS)), SEEDS)
        # env 1 steps only every other time: a partial step must leave it untouched
        vec = {i: [firsts[i]] for i in range(len(SEEDS))}
        for t, a in enumerate(actions):
            given = {0: a[0], 1: a[1]} if t % 2 == 0 else {0: a[0]}
            for i, step in venv.step(given).items():
                vec[i].append(step)
    assert len(vec[0]) == 7 and len(vec[1]) == 4

    for i, seed in enumerate(SEEDS):
        with make_env("PushCube-v1", sim_backend="physx_cpu") as env:
            ref = [env.reset(seed=seed)]
            for t, a in enumerate(actions):
                if i == 0 or t % 2 == 0:
                    ref.append(env.step(a[i]))
        for got, want in zip(vec[i], ref, strict=True):
            np.testing.assert_allclose(got.obs[keys.OBS_STATE], want.obs[keys.OBS_STATE], atol=1e-5)
            assert got.reward == pytest.approx(float(np.asarray(want.reward)), abs=1e-5)
            assert got.success == bool(np.asarray(want.success))
    # different seeds, different starts (the seeds reach the workers)
    assert not np.allclose(vec[0][0].obs[keys.OBS_STATE], vec[1][0].obs[keys.OBS_STATE])


def test_a_worker_error_is_raised_with_its_message_and_the_worker_keeps_serving():
    with make_vector_env("PushCube-v1", 1, sim_backend="physx_cpu") as venv:
        venv.reset([0], [SEEDS[0]])
        with pytest.raises(VectorEnvError, match="worker 0: ValueError: action must be 7 finite"):
            venv.step({0: np.zeros(3, np.float32)})
        step = venv.step({0: np.zeros(keys.ACTION_DIM, np.float32)})[0]
        assert step.obs[keys.OBS_STATE].shape[0] > 0


def test_zero_environments_is_a_clear_error():
    with pytest.raises(ValueError, match="num_envs must be >= 1"):
        ProcessVectorEnv(0, {})


_PARENT = """
import time
from stare_robot.sim.vector_env import make_vector_env
venv = make_vector_env("PushCube-v1", 2, sim_backend="physx_cpu")
venv.reset([0, 1], [50_000, 50_001])
print(" ".join(str(p.pid) for p in venv._procs), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:  # a zombie is dead but listed until init reaps it
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_workers_exit_when_their_parent_is_killed():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    workers: list[int] = []
    try:
        line = parent.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        parent.send_signal(signal.SIGKILL)  # no cleanup code runs in the parent
        parent.wait(timeout=10)
        deadline = time.monotonic() + 60
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        orphans = [p for p in workers if _alive(p)]
        assert not orphans, f"workers {orphans} outlived their killed parent"
    finally:  # whatever the outcome, nothing of it keeps running
        for pid in [parent.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.wait(timeout=10)
