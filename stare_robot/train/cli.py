"""``stare-robot train METHOD ...``: one module per training method, each with ``main(argv)``.

    stare-robot train sft --data data/pushcube.zarr --out runs/sft_pushcube
"""

from __future__ import annotations

import sys

from stare_robot.cli import dispatch

# method -> (module, one-line help); imported only when that method runs
METHODS: dict[str, tuple[str, str]] = {
    "sft": ("stare_robot.train.sft", "supervised fine-tuning (behaviour cloning) on demonstrations"),
    "tpo": ("stare_robot.train.tpo", "preference fine-tuning: STA-TPO (--no-stage-aware: TPO)"),
    "ppo": ("stare_robot.sim.ppo", "online RL in ManiSkill3: STA-PPO (--no-stage-aware: PPO)"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("stare-robot train", "method", METHODS, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
