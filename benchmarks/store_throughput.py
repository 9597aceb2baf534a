"""Episode-store throughput: write / read rgb episodes through EpisodeStore vs plain numpy.save.

    .venv/bin/python benchmarks/store_throughput.py            # 20 episodes x 50 steps per variant
    .venv/bin/python benchmarks/store_throughput.py --quick    # 4 episodes, fewer repeats

Variants: synthetic 128x128 and 224x224 frames (smooth gradients, moving blocks, sensor noise —
compressible like camera images, not all zeros) and, when ManiSkill3 is installed and not --quick,
real PushCube-v1 128x128 renders. For each: MB/s (uncompressed bytes) and frames/s for writing
(the store appends frame by frame and commits; numpy.save writes the stacked episode), reading
whole episodes, random single-frame reads, bytes on disk, and the store/numpy ratios. Both go to
the same directory and neither fsyncs, so reads come from the page cache for both.
A small codec table (zarr arrays written directly, same chunks) backs the store's codec choice.
Writes OUT/store_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import LocalStore

from stare_robot import keys
from stare_robot.data import schema
from stare_robot.data.store import EpisodeStore

RGB = keys.obs_rgb(keys.DEFAULT_CAMERA)


def synthetic_episode(rng: np.random.Generator, steps: int, size: int) -> np.ndarray:
    """(steps, size, size, 3) uint8: a lit gradient scene, two moving blocks, noise σ≈1.5."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    tint = rng.uniform(0.6, 1.0, 3)
    scene = np.stack([(90 + 80 * y + 30 * x) * tint[c] for c in range(3)], -1)
    scene[y > 0.55] = scene[y > 0.55] * 0.7 + 40  # table top
    frames = np.empty((steps, size, size, 3), np.uint8)
    block = max(4, size // 8)
    start = rng.uniform(0.2, 0.6, 2)
    for t in range(steps):
        img = scene.copy()
        for k, colour in enumerate(((200, 40, 40), (60, 60, 70))):  # cube, gripper
            cy, cx = ((start + 0.004 * t * (k + 1)) % 0.8 * size).astype(int)
            img[cy : cy + block, cx : cx + block] = colour
        img += rng.normal(0.0, 1.5, img.shape)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def sim_episodes(num: int, steps: int) -> list[np.ndarray] | None:
    """Real ManiSkill3 PushCube-v1 base-camera renders, or None without ManiSkill3."""
    try:
        import gymnasium as gym
        import mani_skill.envs  # noqa: F401  (registers the envs)
    except ImportError:
        return None
    env = gym.make(
        "PushCube-v1",
        obs_mode="rgb",
        sim_backend="physx_cpu",
        num_envs=1,
        control_mode=keys.ACTION_SPACE_EE_DELTA,
    )
    distinct = []
    for seed in tqdm(range(min(num, 4)), desc="rendering sim frames", leave=False):
        env.reset(seed=seed)
        env.action_space.seed(seed)
        frames = []
        for _ in range(steps):
            obs, *_ = env.step(env.action_space.sample())
            frames.append(np.asarray(obs["sensor_data"]["base_camera"]["rgb"][0], dtype=np.uint8))
        distinct.append(np.stack(frames))
    env.close()
    return [distinct[i % len(distinct)] for i in range(num)]


def dir_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def time_it(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (fn sets itself up each time)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_variant(episodes: list[np.ndarray], workdir: Path, repeats: int, rng) -> dict:
    raw_bytes = sum(e.nbytes for e in episodes)
    frames = sum(len(e) for e in episodes)
    store_dir, npy_dir = workdir / "store.zarr", workdir / "npy"

    def write_store():
        shutil.rmtree(store_dir, ignore_errors=True)
        store = EpisodeStore.create(store_dir)
        for episode in episodes:
            with store.new_episode() as ep:
                for frame in episode:
                    ep.append({RGB: frame})

    def write_npy():
        shutil.rmtree(npy_dir, ignore_errors=True)
        npy_dir.mkdir()
        for i, episode in enumerate(episodes):
            np.save(npy_dir / f"episode_{i:06d}.npy", episode)

    write_s = {"store": time_it(write_store, repeats), "numpy": time_it(write_npy, repeats)}
    store = EpisodeStore.open(store_dir)
    npy_files = sorted(npy_dir.iterdir())

    # correctness before speed: the store gives back exactly what numpy does
    for ep, path in zip(store, npy_files):
        assert np.array_equal(ep.load([RGB])[RGB], np.load(path))

    read_s = {
        "store": time_it(lambda: [ep.load([RGB]) for ep in store], repeats),
        "numpy": time_it(lambda: [np.load(p) for p in npy_files], repeats),
    }
    picks = [
        (int(rng.integers(len(episodes))), int(rng.integers(len(episodes[0])))) for _ in range(200)
    ]
    readers = list(store)
    random_s = {
        "store": time_it(lambda: [readers[e][RGB][t] for e, t in picks], repeats),
        "numpy": time_it(
            lambda: [np.load(npy_files[e], mmap_mode="r")[t].copy() for e, t in picks], repeats
        ),
    }
    out = {
        "episodes": len(episodes),
        "steps_per_episode": len(episodes[0]),
        "frame_shape": list(episodes[0].shape[1:]),
        "chunk_frames": readers[0][RGB].chunks[0],
        "raw_mb": raw_bytes / 1e6,
        "disk_mb": {"store": dir_bytes(store_dir) / 1e6, "numpy": dir_bytes(npy_dir) / 1e6},
    }
    out["compression_ratio"] = out["raw_mb"] / out["disk_mb"]["store"]
    for name, secs in (("write", write_s), ("read_episodes", read_s)):
        out[name] = {
            who: {"seconds": s, "mb_per_s": raw_bytes / s / 1e6, "frames_per_s": frames / s}
            for who, s in secs.items()
        }
        out[name]["store_over_numpy"] = (
            out[name]["store"]["mb_per_s"] / out[name]["numpy"]["mb_per_s"]
        )
    out["read_random_frames"] = {
        who: {"frames": len(picks), "frames_per_s": len(picks) / s} for who, s in random_s.items()
    }
    out["read_random_frames"]["store_over_numpy"] = random_s["numpy"] / random_s["store"]
    shutil.rmtree(store_dir)
    shutil.rmtree(npy_dir)
    return out


def codec_table(frames: np.ndarray, workdir: Path, repeats: int) -> dict:
    """Write/read one episode as a zarr array with several codecs (same chunking as the store)."""
    chunk = (schema.time_chunk_len(frames.shape[1:], frames.dtype), *frames.shape[1:])
    codecs = {
        f"zstd-{schema.ZSTD_LEVEL} (store)": ZstdCodec(level=schema.ZSTD_LEVEL),
        "zstd-3": ZstdCodec(level=3),
        "blosc-lz4": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
        "blosc-zstd-1-bitshuffle": BloscCodec(cname="zstd", clevel=1, shuffle="bitshuffle"),
        "none": None,
    }
    out = {}
    path = workdir / "codec.zarr"
    for name, codec in codecs.items():

        def write(codec=codec):
            shutil.rmtree(path, ignore_errors=True)
            group = zarr.create_group(store=LocalStore(path))
            array = group.create_array(
                "rgb", shape=frames.shape, dtype=frames.dtype, chunks=chunk, compressors=codec
            )
            array[:] = frames

        w = time_it(write, repeats)
        r = time_it(lambda: zarr.open_group(store=LocalStore(path), mode="r")["rgb"][:], repeats)
        out[name] = {
            "write_mb_per_s": frames.nbytes / w / 1e6,
            "read_mb_per_s": frames.nbytes / r / 1e6,
            "compression_ratio": frames.nbytes / dir_bytes(path),
        }
        shutil.rmtree(path)
    return out


def main(argv: list[str] | None = None) -> int:
    from bench_out import add_out_option

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_option(parser)
    parser.add_argument("--quick", action="store_true", help="4 episodes, 1 repeat, no sim frames")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch dir (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    results_path = args.out / "store_throughput.json"
    num = 4 if args.quick else args.episodes
    repeats = 1 if args.quick else 3
    rng = np.random.default_rng(0)

    variants = {
        f"synthetic_{size}": [synthetic_episode(rng, args.steps, size) for _ in range(num)]
        for size in (128, 224)
    }
    if not args.quick:
        sim = sim_episodes(num, args.steps)
        if sim is not None:
            variants["maniskill_pushcube_128"] = sim

    workdir = Path(tempfile.mkdtemp(prefix="store_bench_", dir=args.workdir))
    try:
        results = {
            name: measure_variant(eps, workdir, repeats, rng)
            for name, eps in tqdm(variants.items(), desc="variants")
        }
        codecs = {name: codec_table(eps[0], workdir, repeats) for name, eps in variants.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    report = {
        "command": " ".join(
            shlex.quote(a)
            for a in [
                ".venv/bin/python",
                "benchmarks/store_throughput.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "zarr": zarr.__version__,
            "numpy": np.__version__,
            "load_average_1_5_15_min_at_end": list(os.getloadavg()),
        },
        "notes": "MB = 1e6 bytes of uncompressed frames. No fsync; reads hit the page cache for both. "
        "Store writes append frame by frame (streaming writer + commit); numpy.save writes "
        "the stacked episode in one call.",
        "variants": results,
        "codecs_one_episode": codecs,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(report, indent=1))
    for name, r in results.items():
        print(
            f"{name:<24} write store {r['write']['store']['mb_per_s']:7.1f} MB/s "
            f"({r['write']['store']['frames_per_s']:6.0f} fr/s) numpy {r['write']['numpy']['mb_per_s']:7.1f} MB/s "
            f"ratio {r['write']['store_over_numpy']:.2f} | read store {r['read_episodes']['store']['mb_per_s']:7.1f} "
            f"numpy {r['read_episodes']['numpy']['mb_per_s']:7.1f} ratio {r['read_episodes']['store_over_numpy']:.2f} | "
            f"random fr/s store {r['read_random_frames']['store']['frames_per_s']:.0f} "
            f"numpy {r['read_random_frames']['numpy']['frames_per_s']:.0f} | "
            f"disk {r['disk_mb']['store']:.1f}/{r['disk_mb']['numpy']:.1f} MB (x{r['compression_ratio']:.2f})"
        )
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
