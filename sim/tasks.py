"""The one table of ManiSkill3 tasks stare-robot knows, by friendly name.

Each entry says which ManiSkill3 env to build, the language instruction given to the policy, the
STARE stage family, the expert that solves it (a motion-planning solution for the Franka tasks, the
scripted expert of :mod:`stare_robot.sim.expert_bridge` for the WidowX ones), the robot and camera,
and where the privileged quantities (manipulated object, second object, goal) live on the env.
Nothing here imports ManiSkill3, so the table is cheap to read (``stare-robot demos --help``, task
validation in other modules). The WidowX (SimplerEnv-Bridge) entries live in
:mod:`stare_robot.sim.bridge_tasks`.

    >>> get_task("PushCube-v1").stage_family
    'push_pull'
    >>> get_task("PutCarrotOnPlateInScene-v1").robot
    'widowx250s'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stare_robot import keys
from stare_robot.names import did_you_mean

ROBOT = "panda"  # ManiSkill's Franka Emika Panda: the robot of the tabletop tasks
EXPERT_MOTION_PLANNER = "motion_planner"  # sim/expert.py: ManiSkill's Panda solutions, re-tracked
EXPERT_SCRIPTED = "scripted"  # sim/expert_bridge.py: waypoints from privileged poses
WIDOWX = "widowx250s"  # the WidowX 250 S of ManiSkill's SimplerEnv-Bridge envs
BRIDGE_CAMERA = "3rd_view_camera"  # the Bridge dataset's over-the-shoulder camera, 640x480
# ManiSkill's Bridge envs build their WidowX with this controller; SimEnv maps our 7-D action to it
BRIDGE_CONTROL_MODE = "arm_pd_ee_target_delta_pose_align2_gripper_pd_joint_pos"
FLAT_TABLE_Z = 0.8695  # world z of the Bridge flat table's top (the pack's README; objects rest on it)
SINK_FLOOR_Z = 0.918  # world z where the eggplant rests in the sink (measured: centre 0.937 - 0.019)


@dataclass(frozen=True)
class TaskSpec:
    """One task: how to build it and where to read its privileged state.

    ``obj_attr`` / ``target_attr`` are attribute names of actors on the unwrapped ManiSkill env
    (for the Bridge envs: keys of its ``objs`` dict); ``goal`` says how the goal position is found:
    ``"actor:<attr>"`` (that actor's position), ``"on_top:<attr>"`` (the position one object height
    above that actor, for stacking), ``"resting_on:<attr>"`` (the object's centre resting on that
    actor's top face) or ``"none"`` (no goal position; stored as NaN).

    ``robot``, ``camera`` and ``stage_config`` are what other parts key on: the robot profile
    (``"panda"``, ``"widowx250s"``), the ManiSkill camera whose image the policy sees, and stage
    family settings beyond ``obj_half_size`` (stored as episode attrs, used by the online tracker).
    """

    name: str
    env_id: str
    instruction: str
    stage_family: str
    obj_attr: str
    goal: str
    obj_half_size: float  # object half extent along z when resting on the table (metres)
    solver: str = ""  # motion_planner: function in mani_skill.examples.motionplanning.panda.solutions
    target_attr: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    robot: str = ROBOT
    camera: str = keys.DEFAULT_CAMERA
    expert: str = EXPERT_MOTION_PLANNER
    stage_config: dict[str, Any] = field(default_factory=dict)
    control_mode: str = keys.ACTION_SPACE_EE_DELTA  # the ManiSkill controller the env is built with
    native_obs_mode: str | None = None  # the only ManiSkill obs_mode the env accepts, if it limits it
    surface_z: float = 0.0  # world z subtracted from every reported position (see TASKS below)
    assets: tuple[str, ...] = ()  # ManiSkill asset ids the env needs beyond those in the wheel

    @property
    def stage_settings(self) -> dict[str, Any]:
        """Every stage-family setting this task fixes (``obj_half_size`` and ``stage_config``)."""
        return {keys.SIM_OBJ_HALF_SIZE: self.obj_half_size, **self.stage_config}


# The paper's four Franka tasks plus PickCube. Instructions follow the tasks' ManiSkill docstrings.
TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            name="StackCube-v1",
            env_id="StackCube-v1",
            instruction="stack the red cube on top of the green cube",
            stage_family="stack",
            solver="solveStackCube",
            obj_attr="cubeA",
            target_attr="cubeB",
            goal="on_top:cubeB",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="PushCube-v1",
            env_id="PushCube-v1",
            instruction="push the cube to the goal region",
            stage_family="push_pull",
            solver="solvePushCube",
            obj_attr="obj",
            goal="actor:goal_region",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="PullCube-v1",
            env_id="PullCube-v1",
            instruction="pull the cube to the goal region",
            stage_family="push_pull",
            solver="solvePullCube",
            obj_attr="obj",
            goal="actor:goal_region",
            obj_half_size=0.02,
        ),
        TaskSpec(
            name="LiftPegUpright-v1",
            env_id="LiftPegUpright-v1",
            instruction="lift the peg and stand it upright on the table",
            stage_family="lift_upright",
            solver="solveLiftPegUpright",
            obj_attr="peg",
            goal="none",
            obj_half_size=0.025,  # the peg lies on its side: half its width
        ),
        TaskSpec(
            name="PickCube-v1",
            env_id="PickCube-v1",
            instruction="pick up the cube and move it to the goal position",
            stage_family="pick_place",
            solver="solvePickCube",
            obj_attr="cube",
            goal="actor:goal_site",
            obj_half_size=0.02,
        ),
    )
}


_BRIDGE_COMMON: dict[str, Any] = {
    "robot": WIDOWX,
    "camera": BRIDGE_CAMERA,
    "expert": EXPERT_SCRIPTED,
    "control_mode": BRIDGE_CONTROL_MODE,
    "native_obs_mode": "rgb+segmentation",  # the Bridge envs reject plain "rgb" and "state"
    "assets": ("widowx250s", "bridge_v2_real2sim"),
}
# The paper's SimplerEnv-WidowX tasks, as ManiSkill3's ports of them (their adapter is
# sim/bridge_tasks.py). Instructions are the envs' own ``get_language_instruction``. Positions of
# these tasks are reported relative to ``surface_z``, the world height of the surface the object
# starts on (measured after the env's settling), so that "height above rest" means the same as on
# the Franka tabletop (table top at z = 0). Objects are the env's ``objs[<model id>]``.
_BRIDGE_PUT_ON = {"require_release": True, "place_tolerance": 0.04, "place_margin": 0.06}
TASKS.update(
    {
        spec.name: spec
        for spec in (
            TaskSpec(
                name="PutSpoonOnTableClothInScene-v1",
                env_id="PutSpoonOnTableClothInScene-v1",
                instruction="put the spoon on the towel",
                stage_family="pick_place",
                obj_attr="bridge_spoon_generated_modified",
                target_attr="table_cloth_generated_shorter",
                goal="resting_on:table_cloth_generated_shorter",
                obj_half_size=0.013,
                surface_z=FLAT_TABLE_Z,
                **_BRIDGE_COMMON,
                stage_config=_BRIDGE_PUT_ON,
            ),
            TaskSpec(
                name="PutCarrotOnPlateInScene-v1",
                env_id="PutCarrotOnPlateInScene-v1",
                instruction="put carrot on plate",
                stage_family="pick_place",
                obj_attr="bridge_carrot_generated_modified",
                target_attr="bridge_plate_objaverse_larger",
                goal="resting_on:bridge_plate_objaverse_larger",
                obj_half_size=0.019,
                surface_z=FLAT_TABLE_Z,
                **_BRIDGE_COMMON,
                stage_config=_BRIDGE_PUT_ON,
            ),
            TaskSpec(
                name="StackGreenCubeOnYellowCubeBakedTexInScene-v1",
                env_id="StackGreenCubeOnYellowCubeBakedTexInScene-v1",
                instruction="stack the green block on the yellow block",
                stage_family="stack",
                obj_attr="baked_green_cube_3cm",
                target_attr="baked_yellow_cube_3cm",
                goal="on_top:baked_yellow_cube_3cm",
                obj_half_size=0.015,
                surface_z=FLAT_TABLE_Z,
                **_BRIDGE_COMMON,
                # 3 cm cubes: the xy rule of the env (|target half extent xy| + 3 mm)
                stage_config={"stack_xy_tolerance": 0.024},
            ),
            TaskSpec(
                name="PutEggplantInBasketScene-v1",
                env_id="PutEggplantInBasketScene-v1",
                instruction="put eggplant into yellow basket",
                stage_family="pick_place",
                obj_attr="eggplant",
                target_attr="dummy_sink_target_plane",  # invisible plane at the basket's bottom
                goal="resting_on:dummy_sink_target_plane",
                obj_half_size=0.019,
                surface_z=SINK_FLOOR_Z,
                **_BRIDGE_COMMON,
                stage_config=_BRIDGE_PUT_ON,
            ),
        )
    }
)


class UnknownTaskError(ValueError):
    """A task name that is not in :data:`TASKS`."""


def get_task(name: str) -> TaskSpec:
    """The spec of task ``name``; an unknown name raises with the valid names and a suggestion."""
    if name in TASKS:
        return TASKS[name]
    hint = did_you_mean(name, TASKS, cutoff=0.5)
    raise UnknownTaskError(f"unknown task '{name}'.{hint} Valid tasks: {', '.join(sorted(TASKS))}.")
