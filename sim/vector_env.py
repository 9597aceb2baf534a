"""N ManiSkill3 environments stepped together, for on-policy RL (PPO) rollouts.

    venv = make_vector_env("PushCube-v1", num_envs=2, obs_mode="rgb")
    first = venv.reset([0, 1], seeds=[50_000, 50_001])        # {env index: Step}
    after = venv.step({0: action0, 1: action1})               # only the envs given step
    venv.close()

One interface, two implementations, chosen by ``sim_backend`` (the one flag):

- ``physx_cpu`` (this machine): :class:`ProcessVectorEnv`, one worker process per environment,
  each holding its own single-env :class:`~stare_robot.sim.env.SimEnv`. Commands go out to all
  workers before any answer is read, so the simulations step in parallel on separate cores.
- ``physx_cuda``: :class:`BatchedVectorEnv`, ManiSkill3's GPU-batched simulation: one
  ``SimEnv(num_envs=N)`` whose batched Steps are split per environment. Envs that are not given
  an action repeat a zero action (a GPU scene steps all envs at once); partial resets use
  ManiSkill's ``env_idx`` reset option. (Not exercised on this CPU-only machine.)

Every Step comes back unbatched (no env axis) with its ``info`` dropped (it holds torch tensors),
so the rollout code is the same for both. Resets here do not rebuild the scene
(``reconfigure=False``): RL rollouts need varied, not bit-exact, starts, and rebuilding a
rendered scene per episode costs more than the episode on the CPU.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from stare_robot.sim.env import Step, make_env, resolve_sim_backend
from stare_robot.sim.tasks import get_task


def _plain(step: Step) -> Step:
    """A picklable, unbatched Step (``info`` holds torch tensors and is not needed here)."""
    return Step(step.obs, step.privileged, step.reward, step.terminated, step.truncated, step.success)


def _worker(conn, env_kwargs: dict[str, Any]) -> None:
    """Worker-process loop: build one env, then serve (command, argument) requests."""
    torch.set_num_threads(1)
    try:
        env = make_env(**env_kwargs)
        conn.send(("ok", {"control_rate_hz": env.control_rate_hz}))
    except Exception as err:  # noqa: BLE001  the parent re-raises it with the message
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    try:
        while True:
            command, arg = conn.recv()
            if command == "close":
                break
            try:
                step = env.reset(seed=arg) if command == "reset" else env.step(arg)
                conn.send(("ok", _plain(step)))
            except Exception as err:  # noqa: BLE001
                conn.send(("error", f"{type(err).__name__}: {err}\n{traceback.format_exc()}"))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        env.close()


class VectorEnvError(RuntimeError):
    """A worker environment failed (its message and traceback are included)."""


class ProcessVectorEnv:
    """``num_envs`` single-env simulations in worker processes (CPU physics)."""

    def __init__(self, num_envs: int, env_kwargs: dict[str, Any]):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        ctx = mp.get_context("spawn")  # never fork a process that has torch / SAPIEN loaded
        self._conns, self._procs = [], []
        for _ in range(num_envs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, env_kwargs), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        answers = [self._receive(i) for i in range(num_envs)]
        self.control_rate_hz = float(answers[0]["control_rate_hz"])

    def _receive(self, i: int):
        try:
            status, payload = self._conns[i].recv()
        except EOFError as err:
            raise VectorEnvError(f"environment worker {i} died (exit code {self._procs[i].exitcode})") from err
        if status != "ok":
            raise VectorEnvError(f"environment worker {i}: {payload}")
        return payload

    def _request(self, commands: Mapping[int, tuple[str, Any]]) -> dict[int, Step]:
        for i, command in commands.items():  # all out first: the workers run in parallel
            self._conns[i].send(command)
        return {i: self._receive(i) for i in commands}

    def reset(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[int, Step]:
        return self._request({int(i): ("reset", int(s)) for i, s in zip(indices, seeds)})

    def step(self, actions: Mapping[int, np.ndarray]) -> dict[int, Step]:
        return self._request({int(i): ("step", np.asarray(a, np.float32)) for i, a in actions.items()})

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        self._conns, self._procs = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BatchedVectorEnv:
    """``num_envs`` environments in one GPU-batched ManiSkill3 scene."""

    def __init__(self, num_envs: int, env_kwargs: dict[str, Any]):
        self.env = make_env(**{**env_kwargs, "num_envs": num_envs})
        self.num_envs = num_envs
        self.control_rate_hz = self.env.control_rate_hz
        self._last: Step | None = None
        self._seeds = list(range(num_envs))

    def _split(self, step: Step, indices: Sequence[int]) -> dict[int, Step]:
        def row(d: dict[str, Any], i: int) -> dict[str, Any]:
            return {k: (v if isinstance(v, str) else np.asarray(v)[i]) for k, v in d.items()}

        return {
            i: Step(
                row(step.obs, i),
                row(step.privileged, i),
                float(np.asarray(step.reward)[i]),
                bool(np.asarray(step.terminated)[i]),
                bool(np.asarray(step.truncated)[i]),
                bool(np.asarray(step.success)[i]),
            )
            for i in indices
        }

    def reset(self, indices: Sequence[int], seeds: Sequence[int]) -> dict[int, Step]:
        indices = [int(i) for i in indices]
        # ManiSkill takes one seed per env of the scene even for a partial reset: keep the
        # others' seeds, replace the reset envs'
        for i, s in zip(indices, seeds):
            self._seeds[i] = int(s)
        raw, _ = self.env.env.reset(seed=list(self._seeds), options={"env_idx": np.asarray(indices)})
        success = np.asarray(self.env.base.evaluate()["success"].cpu()).astype(bool)
        self._last = self.env._step(raw, 0.0, False, False, success, {})
        return self._split(self._last, indices)

    def step(self, actions: Mapping[int, np.ndarray]) -> dict[int, Step]:
        batch = np.zeros((self.num_envs, len(next(iter(actions.values())))), np.float32)
        for i, a in actions.items():
            batch[int(i)] = a
        return self._split(self.env.step(batch), list(actions))

    def close(self) -> None:
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_vector_env(
    task: str,
    num_envs: int,
    obs_mode: str = "state",
    image_size: int = 128,
    sim_backend: str = "auto",
    max_episode_steps: int | None = None,
) -> ProcessVectorEnv | BatchedVectorEnv:
    """``num_envs`` environments of ``task``: worker processes on ``physx_cpu``, one GPU-batched
    scene on ``physx_cuda`` (``auto`` picks the GPU when CUDA is present)."""
    get_task(task)  # an unknown task fails here, with its did-you-mean, not in a worker
    backend = resolve_sim_backend(sim_backend)
    kwargs = {
        "task": task,
        "obs_mode": obs_mode,
        "image_size": image_size,
        "sim_backend": backend,
        "max_episode_steps": max_episode_steps,
    }
    if backend == "physx_cuda":
        return BatchedVectorEnv(num_envs, kwargs)
    return ProcessVectorEnv(num_envs, kwargs)
