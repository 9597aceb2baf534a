"""ManiSkill3 adapters for stare-robot (installed as ``stare_robot.sim``).

- :mod:`.tasks` — the task table (friendly name -> env id, instruction, stage family); no ManiSkill
  import.
- :mod:`.env` — ``make_env``: a task in the 7-D ``pd_ee_delta_pose`` action space returning
  policy-visible and privileged observation dicts keyed by :mod:`stare_robot.keys`.
- the EE-delta action convention lives in the core: :mod:`stare_robot.robots.ee_action`.
- :mod:`.expert` — motion-planner solutions re-expressed as EE-delta rollouts.
- :mod:`.bridge_tasks` — the SimplerEnv-WidowX (Bridge) envs: assets, observations, action mapping;
  :mod:`.expert_bridge` — their scripted expert.
- :mod:`.demos` — ``generate_demos`` and the ``stare-robot demos`` command.
- :mod:`.replay` — ``replay_episode``: open-loop replay from the recorded seed.
- :mod:`.evaluate` — ``stare-robot eval``; :mod:`.collect` — ``stare-robot rollouts``;
  :mod:`.task_table` — ``stare-robot tasks``.
- the orchestration that drives a simulator: :mod:`.ppo` (the PPO / STA-PPO driver,
  ``stare-robot train ppo``) and :mod:`.ipi` (``stare-robot ipi``).

This layer may import the core, never the server or ROS (docs/architecture.md).
"""
