"""Timeline plots of annotated episodes: stage bands, gripper signal, keyframes, key distances."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stare_robot import keys
from stare_robot.stages.family import Trajectory
from stare_robot.stages.separator import Segmentation

STAGE_COLOURS = ("#cfe2f3", "#d9ead3", "#fff2cc", "#f4cccc", "#d9d2e9", "#fce5cd")


def plot_timelines(
    episodes: Sequence[tuple[str, Trajectory, Segmentation, list[int]]], out: str | Path
) -> Path:
    """One row per episode ``(title, trajectory, segmentation, keyframes)``: coloured stage bands
    with their names, the family's key distances (left axis, metres/radians), the gripper opening
    (right axis, 0..1) and a dashed line at each keyframe. Writes a PNG to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(episodes), 1, figsize=(10, 2.6 * len(episodes)), squeeze=False)
    for ax, (title, traj, seg, keyframes) in zip(axes[:, 0], episodes):
        fam, stage, cond = seg.family, seg.stage, seg.conditions
        n = stage.shape[0]
        steps = np.arange(n)
        for k, name in enumerate(fam.stage_names):
            inside = np.flatnonzero(stage == k)
            if inside.size == 0:
                continue
            lo, hi = inside[0] - 0.5, inside[-1] + 0.5
            ax.axvspan(lo, hi, color=STAGE_COLOURS[k % len(STAGE_COLOURS)], zorder=0)
            ax.text((lo + hi) / 2, 1.0, name, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=8)
        for name in getattr(fam, "key_distances", ()):
            if name in cond and name != "signal":
                ax.plot(steps, cond[name], label=name, lw=1.5)
        ax.set_ylabel("distance (m / rad)")
        ax.set_xlim(-0.5, n - 0.5)
        grip = ax.twinx()
        if keys.OBS_GRIPPER in traj:
            grip.plot(steps, np.asarray(traj[keys.OBS_GRIPPER]).reshape(-1), "k:", label="gripper opening")
        elif keys.ACTION in traj:
            grip.step(steps, (np.asarray(traj[keys.ACTION])[:, 6] + 1) / 2, "k:", where="post",
                      label="gripper command")
        grip.set_ylim(-0.05, 1.05)
        grip.set_ylabel("gripper (0 closed, 1 open)")
        for i, frame in enumerate(keyframes):
            ax.axvline(frame, color="k", ls="--", lw=1, label="keyframe" if i == 0 else None)
        ax.set_title(title, fontsize=9, loc="left", pad=14)
        lines = ax.get_legend_handles_labels()
        glines = grip.get_legend_handles_labels()
        ax.legend(lines[0] + glines[0], lines[1] + glines[1], fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
