"""A small ManiSkill3 env wrapper that speaks stare-robot's observation keys.

    env = make_env("PushCube-v1", obs_mode="rgb")
    step = env.reset(seed=0)
    while not (step.terminated or step.truncated):
        step = env.step(policy.predict(step.obs)[0])
    print(step.success)

Every :class:`Step` carries two dicts, one step each, numpy, no batch axis (with ``num_envs > 1``
every array gets a leading env axis instead):

- ``obs`` — exactly what a :class:`~stare_robot.policies.base.Policy` may see: ``obs/state``
  (qpos then qvel, 18), ``obs/joint_pos`` (9), ``obs/ee_pose`` (7, world-frame TCP),
  ``obs/gripper`` (1, opening 0..1), then ``obs/env_state`` (E, ManiSkill's flat state vector) in
  ``state`` mode or ``obs/base_camera/rgb`` (H, W, 3 uint8) in ``rgb`` mode, and ``instruction``.
  Proprioception is there in both modes (a real robot has it too); object and goal state are not
  in rgb mode.
- ``privileged`` — what STARE needs and the policy must not see: ``sim/obj_pose``,
  ``sim/goal_pos`` (NaN when the task has none), ``sim/target_pose`` (stack only),
  ``sim/is_grasped``, ``sim/contact``, ``sim/success``, plus ``obs/ee_pose`` and ``obs/gripper``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
from stare_robot.sim.tasks import WIDOWX, TaskSpec, get_task

from stare_robot import keys

OBS_MODES = ("state", "rgb")
SIM_BACKENDS = ("auto", "physx_cpu", "physx_cuda")
FINGER_OPEN_WIDTH = 0.04  # metres per Panda finger joint when fully open
CONTACT_FORCE_N = 1e-2  # a robot link touches the object above this contact force (newtons)
# ...or, on the CPU sim, when a contact point between them is closer than this (metres): a pushed
# cube slides ahead between control steps, so the force at the last sim sub-step is often zero.
CONTACT_DISTANCE = 2e-3


# ManiSkill warnings that every build of a Bridge scene repeats and that say nothing actionable (its
# own scene code places those actors after building them; the WidowX gripper has one mimic joint)
_REPEATED_MANISKILL_WARNINGS = ("No initial pose set for actor builder",
                                "Mimic targets dictionary is missing")


class _FirstOccurrenceOnly:
    """A logging filter letting each of the known repeated warnings through once per process."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes, self.seen = prefixes, set()

    def filter(self, record) -> bool:
        message = record.getMessage()
        for prefix in self.prefixes:
            if message.startswith(prefix):
                if prefix in self.seen:
                    return False
                self.seen.add(prefix)
                record.msg = f"{message} (further warnings like this one are not shown)"
                record.args = ()
        return True


def _quiet_maniskill_repeats() -> None:
    # ManiSkill imports lazily throughout this module: importing it takes seconds, and the task
    # table, `--help` and the vector env's parent process never need it
    from mani_skill import logger

    if not any(isinstance(f, _FirstOccurrenceOnly) for f in logger.filters):
        logger.addFilter(_FirstOccurrenceOnly(_REPEATED_MANISKILL_WARNINGS))


def resolve_sim_backend(sim_backend: str) -> str:
    """``"auto"`` -> GPU sim (``physx_cuda``) when CUDA is present, else ``physx_cpu``."""
    if sim_backend not in SIM_BACKENDS:
        raise ValueError(f"unknown sim_backend '{sim_backend}'; valid: {', '.join(SIM_BACKENDS)}")
    if sim_backend != "auto":
        return sim_backend
    import torch  # only to ask for CUDA; this module is imported by torch-free listings

    return "physx_cuda" if torch.cuda.is_available() else "physx_cpu"


def build_maniskill_env(
    spec: TaskSpec,
    obs_mode: str,
    control_mode: str,
    image_size: int = 128,
    num_envs: int = 1,
    sim_backend: str = "auto",
    max_episode_steps: int | None = None,
):
    """The raw ManiSkill3 gym env for ``spec`` (``obs_mode`` may also be ManiSkill's ``"none"``).

    Tasks whose env accepts one observation mode only (``spec.native_obs_mode``, e.g. the Bridge
    envs' ``"rgb+segmentation"``) are built in that mode at the camera's own resolution, whatever
    ``obs_mode`` asks; tasks with extra assets (``spec.assets``) check them first and raise
    :class:`~stare_robot.sim.bridge_tasks.MissingAssetsError` naming the fix.
    """
    if spec.assets:
        # lazy: bridge_tasks subclasses this module's SimEnv (a top-level import would be circular)
        from stare_robot.sim.bridge_tasks import prepare_assets

        prepare_assets(spec)  # before ManiSkill's own check, which would prompt and exit()
    import gymnasium as gym
    import mani_skill.envs  # noqa: F401  registers the ManiSkill3 env ids with gymnasium

    _quiet_maniskill_repeats()

    native = spec.native_obs_mode is not None
    kwargs: dict[str, Any] = dict(
        obs_mode=spec.native_obs_mode if native else obs_mode,
        control_mode=control_mode,
        num_envs=num_envs,
        sim_backend=resolve_sim_backend(sim_backend),
        **spec.env_kwargs,
    )
    if obs_mode == "rgb" and not native:
        kwargs["sensor_configs"] = {"width": image_size, "height": image_size}
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    try:
        return gym.make(spec.env_id, **kwargs)
    except RuntimeError as err:
        if "vulkan" in str(err).lower() or "render" in str(err).lower():
            raise RuntimeError(
                f"could not create {spec.env_id}: SAPIEN needs a Vulkan device even for state-only "
                "simulation (Mesa >= 24.3 lavapipe on a CPU machine; scripts/setup.sh installs it)."
                f" Original error: {err}"
            ) from err
        raise


@dataclass
class Step:
    """One observation of the env (after a reset or a step). See the module docstring."""

    obs: dict[str, Any]
    privileged: dict[str, Any]
    reward: float | np.ndarray = 0.0
    terminated: bool | np.ndarray = False
    truncated: bool | np.ndarray = False
    success: bool | np.ndarray = False
    info: dict[str, Any] = field(default_factory=dict)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class SimEnv:
    """A ManiSkill3 task in the 7-D ``pd_ee_delta_pose`` action space with stare-robot keys."""

    def __init__(
        self,
        task: str,
        obs_mode: str = "state",
        image_size: int = 128,
        num_envs: int = 1,
        sim_backend: str = "auto",
        max_episode_steps: int | None = None,
        control_mode: str | None = None,
    ):
        """``control_mode`` None: the task's EE-delta controller (``TaskSpec.control_mode``)."""
        self.spec = get_task(task)
        control_mode = control_mode or self.spec.control_mode
        if obs_mode not in OBS_MODES:
            raise ValueError(f"unknown obs_mode '{obs_mode}'; valid: {', '.join(OBS_MODES)}")
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.obs_mode = obs_mode
        self.num_envs = num_envs
        self.camera = self.spec.camera
        self.image_size = image_size
        self.env = build_maniskill_env(
            self.spec, obs_mode, control_mode, image_size, num_envs, sim_backend, max_episode_steps
        )
        self.base = self.env.unwrapped
        self.robot = self.spec.robot
        self.control_rate_hz = float(self.base.control_freq)
        self.max_episode_steps = self.env.spec.max_episode_steps if self.env.spec else None
        self.action_low = self.env.action_space.low.reshape(-1, keys.ACTION_DIM)[0]
        self.action_high = self.env.action_space.high.reshape(-1, keys.ACTION_DIM)[0]

    # --- gym-like API ---
    def reset(self, seed: int, reconfigure: bool = False) -> Step:
        """Reset to the initial state of ``seed``. ``reconfigure`` rebuilds the physics scene
        (slower) so the episode starts with no solver state left from earlier episodes: needed
        for bit-exact open-loop replay, which uses it too."""
        options = {"reconfigure": True} if reconfigure else None
        raw, info = self.env.reset(seed=seed, options=options)
        success = _np(self.base.evaluate()["success"]).astype(bool)
        return self._step(raw, 0.0, False, False, success, info)

    def step(self, action: np.ndarray) -> Step:
        """Execute one 7-D normalised ``pd_ee_delta_pose`` action (see ``stare_robot.robots.ee_action``)."""
        action = np.asarray(action, dtype=np.float32)
        if action.shape[-1] != keys.ACTION_DIM or not np.all(np.isfinite(action)):
            raise ValueError(
                f"action must be {keys.ACTION_DIM} finite numbers (dxyz, drot, gripper), got "
                f"shape {action.shape}"
            )
        raw, reward, terminated, truncated, info = self.env.step(self._env_action(action))
        success = _np(info["success"]).astype(bool)
        return self._step(raw, _np(reward), _np(terminated), _np(truncated), success, info)

    def _env_action(self, action: np.ndarray) -> np.ndarray:
        """The ManiSkill action for one of ours (the Panda's controller takes ours as it is)."""
        return action

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def obj_half_size(self) -> float:
        return self.spec.obj_half_size

    @property
    def base_pose(self) -> np.ndarray:
        """(7,) world pose of the robot root, the frame the EE-delta controller works in."""
        return _np(self.base.agent.robot.pose.raw_pose)[0]

    # --- observation assembly ---
    def _step(self, raw, reward, terminated, truncated, success, info) -> Step:
        obs = self._policy_obs(raw)
        privileged = self._privileged(success)
        privileged[keys.OBS_EE_POSE] = obs[keys.OBS_EE_POSE]
        privileged[keys.OBS_GRIPPER] = obs[keys.OBS_GRIPPER]

        def flag(x, dtype):
            x = np.broadcast_to(np.asarray(x, dtype).reshape(-1), (self.num_envs,))
            return x[0].item() if self.num_envs == 1 else x.copy()

        return Step(
            obs=obs,
            privileged=privileged,
            reward=flag(reward, np.float32),
            terminated=flag(terminated, bool),
            truncated=flag(truncated, bool),
            success=flag(success, bool),
            info=info,
        )

    def _unbatch(self, x):
        """Drop the env axis when there is one env (arrays become numpy scalars or rows)."""
        x = np.asarray(x)
        return x[0] if self.num_envs == 1 else x

    def _policy_obs(self, raw) -> dict[str, Any]:
        agent = self.base.agent
        qpos = _np(agent.robot.get_qpos()).astype(np.float32)
        qvel = _np(agent.robot.get_qvel()).astype(np.float32)
        opening = np.clip(qpos[:, -2:].sum(axis=1, keepdims=True) / (2 * FINGER_OPEN_WIDTH), 0, 1)
        obs: dict[str, Any] = {
            keys.OBS_STATE: np.concatenate([qpos, qvel], axis=1),
            keys.OBS_JOINT_POS: qpos,
            keys.OBS_EE_POSE: _np(agent.tcp.pose.raw_pose).astype(np.float32),
            keys.OBS_GRIPPER: opening.astype(np.float32),
        }
        if self.obs_mode == "state":
            obs[keys.OBS_ENV_STATE] = _np(raw).astype(np.float32).reshape(self.num_envs, -1)
        else:
            obs[keys.obs_rgb(self.camera)] = _np(raw["sensor_data"][self.camera]["rgb"]).astype(
                np.uint8
            )
        obs = {k: self._unbatch(v) for k, v in obs.items()}
        obs[keys.INSTRUCTION] = self.spec.instruction
        return obs

    def _privileged(self, success: np.ndarray) -> dict[str, Any]:
        env, spec = self.base, self.spec
        obj = getattr(env, spec.obj_attr)
        priv: dict[str, Any] = {
            keys.SIM_OBJ_POSE: _np(obj.pose.raw_pose).astype(np.float32),
            keys.SIM_GOAL_POS: self._goal_pos(),
            keys.SIM_IS_GRASPED: _np(env.agent.is_grasping(obj)).astype(bool).reshape(-1),
            keys.SIM_CONTACT: self._contact(obj),
            keys.SIM_SUCCESS: np.asarray(success, bool).reshape(-1),
        }
        if spec.target_attr is not None:
            target = getattr(env, spec.target_attr)
            priv[keys.SIM_TARGET_POSE] = _np(target.pose.raw_pose).astype(np.float32)
        return {k: self._unbatch(v) for k, v in priv.items()}

    def _contact(self, obj) -> np.ndarray:
        """(num_envs,) bool: a hand or finger link touches ``obj``."""
        scene, links = self.base.scene, self._touch_links()
        forces = np.any(
            [
                np.linalg.norm(_np(scene.get_pairwise_contact_forces(link, obj)), axis=-1)
                > CONTACT_FORCE_N
                for link in links
            ],
            axis=0,
        ).reshape(-1)
        if scene.gpu_sim_enabled:
            return forces
        entities = {link._bodies[0].entity for link in links}
        target = obj._bodies[0].entity
        for contact in scene.px.get_contacts():
            pair = {body.entity for body in contact.bodies}
            touching = any(point.separation <= CONTACT_DISTANCE for point in contact.points)
            if target in pair and pair & entities and touching:
                return np.ones(1, bool)
        return forces

    def _touch_links(self) -> list:
        """Hand and finger links (looked up each time: a reconfiguring reset rebuilds them)."""
        agent = self.base.agent
        hand = next(link for link in agent.robot.get_links() if link.name == "panda_hand")
        return [agent.finger1_link, agent.finger2_link, hand]

    def _goal_pos(self) -> np.ndarray:
        """(num_envs, 3) goal position; see ``TaskSpec.goal``."""
        kind, _, attr = self.spec.goal.partition(":")
        if kind == "none":
            return np.full((self.num_envs, 3), np.nan, np.float32)
        pos = _np(getattr(self.base, attr).pose.p).astype(np.float32).reshape(self.num_envs, 3)
        if kind == "on_top":  # one cube height above the lower cube
            pos = pos + np.array([0.0, 0.0, 2 * self.spec.obj_half_size], np.float32)
        return pos


def make_env(
    task: str,
    obs_mode: str = "state",
    image_size: int = 128,
    num_envs: int = 1,
    sim_backend: str = "auto",
    max_episode_steps: int | None = None,
) -> SimEnv:
    """A :class:`SimEnv` for ``task`` in the 7-D ``pd_ee_delta_pose`` action space.

    ``obs_mode``: ``"state"`` or ``"rgb"`` (``image_size`` x ``image_size`` base camera).
    ``sim_backend``: ``"auto"`` (GPU when CUDA is present, else CPU), ``"physx_cpu"`` or
    ``"physx_cuda"``. ``max_episode_steps``: None keeps ManiSkill's default for the task.
    """
    spec = get_task(task)
    if spec.robot == WIDOWX:  # SimplerEnv-Bridge tasks: their own observation and action adapter
        from stare_robot.sim.bridge_tasks import BridgeSimEnv  # lazy: circular, see above

        return BridgeSimEnv(task, obs_mode, image_size, num_envs, sim_backend, max_episode_steps)
    return SimEnv(task, obs_mode, image_size, num_envs, sim_backend, max_episode_steps)
