"""Throughput report: JSON, markdown table and PNG plot of frames/s vs num_envs.

Series (one preset, hence one grid size):

- curio_jax full training pipeline (env + rollout + update), ``curio-jax bench train`` cells
  (one seed; vmapped multi-seed cells are plotted at ``num_envs * seeds`` total envs);
- env-only steps/s of curio_jax and stock navix (``symbolic_first_person``),
  ``curio-jax bench env`` cells, random actions;
- the PyTorch + gymnasium reference's training frames/s (2 torch threads), one point;
- navix's own PPO agent training on navix DoorKey, matched to a PPO preset's rollout length,
  epochs and minibatches (``curio-jax bench train --anchor navix-ppo``), one point per num_envs.

Counting convention (as :mod:`curio_jax.tools.bench`): one frame = one env step of one env.

Usage::

    # measure everything now (several minutes on 2 CPU cores):
    python benchmarks/report.py --preset notebook-rnd-8x8 --num-envs 32,512,2048

    # rebuild the report from result files written earlier by `curio-jax bench ... --json`:
    python benchmarks/report.py --from-json benchmarks/results/env_2core_cpu.json \\
        benchmarks/results/train_rnd8x8_2core_cpu.json \\
        benchmarks/results/train_rnd8x8_16seeds_2core_cpu.json \\
        benchmarks/results/train_rnd8x8_seedloop_vs_vmap_2core_cpu.json \\
        benchmarks/results/train_rnd8x8_seedloop_2core_cpu.json

The measuring itself is :func:`curio_jax.tools.bench.bench_env` and
:func:`curio_jax.tools.bench.bench_train` (each training cell in its own process); this script
only selects, tabulates and plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ENV_IMPLS = ("curio_jax", "navix_symbolic_first_person")
LABELS = {
    "train": "curio_jax training (env + rollout + update)",
    "train_seeds": "curio_jax training, vmapped seeds (x = envs x seeds)",
    "reference": "PyTorch reference training (2 threads)",
    "navix_ppo": "navix's own PPO training (matched rollout, epochs, minibatches)",
    "navix_ppo_conv": "navix's own PPO training with its default ConvEncoder",
    "curio_jax": "curio_jax env only (random actions)",
    "navix_symbolic_first_person": "stock navix env only (symbolic_first_person)",
}


def measure(preset: str, num_envs: list[int], env_steps: int, updates: int) -> list[dict]:
    """Run the env and training benchmarks now; returns all records (env and train)."""
    from curio_jax.config import preset as get_preset
    from curio_jax.tools import bench

    size = get_preset(preset).env.size
    print(f"device: {bench.device_description()}")
    env_records = bench.bench_env([size], num_envs, impls=ENV_IMPLS, steps=env_steps)
    train_records = bench.bench_train(preset, num_envs, [1], updates=updates, with_reference=True)
    return env_records + train_records


def load(paths: list[Path]) -> list[dict]:
    """All records of `curio-jax bench env/train --json` files (each a JSON list)."""
    records = []
    for p in paths:
        data = json.loads(p.read_text())
        if isinstance(data, dict) and "records" in data:  # a previous report.json
            data = data["records"]
        if not isinstance(data, list):
            raise ValueError(f"{p}: expected a JSON list of benchmark records")
        records.extend(data)
    return records


def select(records: list[dict], preset: str | None) -> tuple[str, int, list[dict], list[dict]]:
    """(preset, size, env records of that size, train records of that preset)."""
    train = [r for r in records if "frames_per_sec" in r]
    presets = sorted({r["preset"] for r in train})
    if preset is None:
        if len(presets) != 1:
            raise ValueError(f"give --preset: the training records hold {presets or 'none'}")
        preset = presets[0]
    train = [r for r in train if r["preset"] == preset]
    if not train:
        raise ValueError(f"no training records of preset {preset!r}")
    size = train[0]["size"]
    env = [
        r for r in records if "steps_per_sec" in r and r["size"] == size and r["impl"] in ENV_IMPLS
    ]
    return preset, size, env, train


def passes(r: dict) -> str:
    """How a curio_jax training cell took its update: "auto" when its micro-batch is the
    automatic choice for its device (A2CConfig.micro_batch=None), else "one pass" over each
    seed's batch or "micro-batch K". Records from before micro-batching: one pass."""
    from curio_jax.config import micro_batch_size
    from curio_jax.config import preset as get_preset

    a2c = get_preset(r["preset"]).with_overrides({"train.num_envs": r["num_envs"]}).train
    backend = "cpu" if r["device"].startswith("cpu") else "gpu"
    mb = r.get("micro_batch", a2c.num_envs * a2c.rollout_size)
    if "micro_batch" in r and mb == micro_batch_size(a2c, backend):
        return "auto"
    return "one pass" if mb >= a2c.num_envs * a2c.rollout_size else f"micro-batch {mb}"


def seed_tag(r: dict) -> str:
    """How a multi-seed cell ran its seeds: "seed loop K" (A2CConfig.seed_batch K < seeds: K
    vmapped at a time, a loop over the groups inside the program) or "all vmapped" (records
    from before the seed loop existed: all vmapped); "" for one seed."""
    if r["seeds"] == 1:
        return ""
    k = r.get("seed_batch", r["seeds"])
    return f"seed loop {k}" if k < r["seeds"] else "all vmapped"


def pass_label(r: dict) -> str:
    """`passes` with the resolved size for the table: "auto (512)", "one pass", ..., and for
    several seeds how they ran ("; seed loop 1")."""
    how = passes(r)
    label = f"auto ({r['micro_batch']})" if how == "auto" else how
    tag = seed_tag(r)
    return f"{label}; {tag}" if tag else label


def rounds_note(r: dict) -> str:
    """ " (median of 3)" for a cell timed in several rounds (`bench train --rounds`)."""
    n = len(r.get("frames_per_sec_rounds", ()))
    return f" (median of {n})" if n > 1 else ""


def series(env: list[dict], train: list[dict]) -> dict[str, list[tuple[int, float, dict]]]:
    """name -> sorted [(total envs, frames or steps per second, record)]. Training series:
    "train" / "train_seeds" (several seeds), each split by `passes` ("train|one pass") and for
    several seeds by `seed_tag`. Where records of several files give the same point of a
    series, the later one is plotted (the markdown table lists them all)."""
    out: dict[str, list[tuple[int, float, dict]]] = {}
    for r in train:
        if r["impl"] == "torch_reference":
            name = "reference"
        elif r["impl"] == "navix_ppo":
            # the notebook's torso (records before the encoder field had only it), or navix's
            # ConvEncoder
            name = "navix_ppo" if r.get("encoder", "notebook") == "notebook" else "navix_ppo_conv"
        else:
            name = (
                "train|" + passes(r)
                if r["seeds"] == 1
                else "|".join(("train_seeds", passes(r), seed_tag(r)))
            )
        out.setdefault(name, []).append((r["num_envs"] * r["seeds"], r["frames_per_sec"], r))
    for r in env:
        out.setdefault(r["impl"], []).append((r["num_envs"], r["steps_per_sec"], r))
    latest = {k: {t[0]: t for t in v} for k, v in out.items()}  # later records win
    return {k: sorted(v.values(), key=lambda t: t[0]) for k, v in latest.items()}


def markdown(preset: str, size: int, env: list[dict], train: list[dict]) -> str:
    """Two tables: training cells (with FLOP figures) and env-only steps/s by num_envs."""
    lines = [
        f"# Throughput: `{preset}` ({size}x{size})",
        "",
        "One frame = one environment step of one environment. Training = env + rollout + "
        "update, compile time apart; MFLOP/frame from XLA's cost analysis of the compiled "
        "update (not counted: `bench train --no-flops`); matmul rate = a float32 product at "
        "JAX's default precision measured in the same run (2048x2048 on CPU, 8192x8192 on an "
        "accelerator); peak memory: the process's RSS, and on an accelerator the device's peak.",
        "",
        "| impl | envs x seeds | update | frames/s | MFLOP/frame | of matmul rate | compile "
        "| peak memory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(
        train,
        key=lambda r: (
            r["impl"] != "curio_jax",
            r["impl"],
            r["seeds"],
            r["num_envs"],
            r.get("micro_batch"),
            -r.get("seed_batch", r["seeds"]),
        ),
    ):
        if r["impl"] == "curio_jax":
            if r.get("flops_per_frame") is None:
                mflop, frac = "not counted", f"(rate {r['matmul_gflops']:,.0f} GFLOP/s)"
            else:
                mflop = f"{r['flops_per_frame'] / 1e6:.2f}"
                pct = 100 * r["fraction_of_matmul_rate"]
                frac = f"{pct:.0f}% of {r['matmul_gflops']:,.0f} GFLOP/s"
            mem = f"{r['peak_rss_mb']:,.0f} MB RSS"
            if r.get("peak_device_mb"):
                mem += f", {r['peak_device_mb']:,.0f} MB device"
            over = r.get("over_navix_ppo")
            note = f" ({over:.2f}x navix PPO)" if over else ""
            lines.append(
                f"| curio_jax | {r['num_envs']} x {r['seeds']} | {pass_label(r)} | "
                f"{r['frames_per_sec']:,.0f}{rounds_note(r)}{note} | {mflop} | {frac} | "
                f"{r['compile_seconds']:.1f} s | {mem} |"
            )
        elif r["impl"] == "navix_ppo":
            lines.append(
                f"| navix PPO (own agent, {r.get('encoder', 'notebook')} encoder) | "
                f"{r['num_envs']} x 1 | {r['num_steps']} steps, "
                f"{r['epochs']} x {r['minibatches']} minibatches | "
                f"{r['frames_per_sec']:,.0f}{rounds_note(r)} | | | "
                f"{r['compile_seconds']:.1f} s | |"
            )
        else:
            ratio = r.get("curio_jax_best_over_reference")
            note = f" (curio_jax best cell: {ratio:.1f}x)" if ratio else ""
            lines.append(
                f"| torch reference, {r.get('threads', '?')} threads | {r['num_envs']} x 1 | | "
                f"{r['frames_per_sec']:,.0f}{note} | | | | |"
            )
    if env:
        counts = sorted({r["num_envs"] for r in env})
        lines += [
            "",
            "Environment only, random actions, `jit(scan(vmap(step)))` of 128 steps (steps/s):",
            "",
            "| impl | " + " | ".join(f"{n} envs" for n in counts) + " |",
            "|---|" + "---|" * len(counts),
        ]
        for impl in ENV_IMPLS:
            cells = {r["num_envs"]: r["steps_per_sec"] for r in env if r["impl"] == impl}
            if cells:
                vals = " | ".join(f"{cells[n]:,.0f}" if n in cells else "" for n in counts)
                lines.append(f"| {impl} | {vals} |")
    devices = sorted({r["device"] for r in env + train})
    lines += ["", "Devices: " + "; ".join(devices), ""]
    return "\n".join(lines)


def plot(preset: str, size: int, data: dict, path: Path, devices: str = "") -> None:
    """frames/s vs num_envs, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {
        "train": dict(marker="o", color="tab:blue", lw=2),
        "train_seeds": dict(marker="*", color="tab:cyan", ls="none", ms=14),
        "train_seed_loop": dict(marker="P", color="tab:olive", ls="none", ms=12),
        "reference": dict(marker="s", color="tab:red", ls="none", ms=9),
        "navix_ppo": dict(marker="D", color="tab:brown", ls="-.", ms=8),
        "navix_ppo_conv": dict(marker="d", color="tab:pink", ls="-.", ms=8),
        "curio_jax": dict(marker="^", color="tab:green", ls="--"),
        "navix_symbolic_first_person": dict(marker="v", color="tab:orange", ls="--"),
    }
    fig, ax = plt.subplots(figsize=(8, 6.5))
    env_names = ["curio_jax", "navix_symbolic_first_person"]
    train_names = sorted(n for n in data if n.startswith("train"))
    for name in env_names + train_names + ["reference", "navix_ppo", "navix_ppo_conv"]:
        if name not in data:
            continue
        xs = [p[0] for p in data[name]]
        ys = [p[1] for p in data[name]]
        base, how, tag = ([*name.split("|"), "", ""])[:3]
        kw = dict(style["train_seed_loop" if tag.startswith("seed loop") else base])
        if how == "one pass":  # the pre-micro-batching update: hollow markers, dotted
            kw.update(ls=":" if base == "train" else "none", mfc="none")
        elif how.startswith("micro-batch"):  # an explicit micro-batch size
            kw.update(color="tab:purple")
        names = {"auto": "automatic micro-batch", "one pass": "one pass (micro_batch=0)"}
        label = LABELS[base] + (f", {names.get(how, how)}" if how else "")
        if tag.startswith("seed loop"):
            label = label.replace("vmapped seeds", f"seeds in a loop, {tag[10:]} at a time")
        ax.plot(xs, ys, label=label, **kw)
        if base in ("train", "train_seeds", "reference", "navix_ppo", "navix_ppo_conv"):
            for x, y in zip(xs, ys, strict=True):
                # multi-seed labels above (vmapped) or left of (seed loop) the point, so they
                # do not overlap the one-seed cell at the same total envs
                offset = {"train_seeds": (6, 8), "train": (6, 5)}.get(base, (6, -12))
                if tag.startswith("seed loop"):
                    offset = (-42, -3)
                ax.annotate(
                    f"{y:,.0f}", (x, y), textcoords="offset points", xytext=offset, fontsize=8
                )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("parallel environments (num_envs; x seeds for multi-seed cells)")
    ax.set_ylabel("frames/s (training)  or  env steps/s (env only)")
    on = f"\n{devices}" if devices else ""
    ax.set_title(f"{preset} ({size}x{size}): throughput vs num_envs{on}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, help="default: notebook-rnd-8x8 when measuring")
    ap.add_argument(
        "--num-envs", default="32,512,2048", help="comma-separated (measuring mode only)"
    )
    ap.add_argument("--env-steps", type=int, default=128, help="scan length of the env bench")
    ap.add_argument("--updates", type=int, default=10, help="updates per timed training chunk")
    ap.add_argument(
        "--from-json",
        nargs="+",
        type=Path,
        default=None,
        metavar="FILE",
        help="build the report from existing `curio-jax bench env/train --json` files",
    )
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    if args.from_json:
        records = load(args.from_json)
        sources = [str(p) for p in args.from_json]
    else:
        preset = args.preset or "notebook-rnd-8x8"
        num_envs = [int(x) for x in args.num_envs.split(",")]
        records = measure(preset, num_envs, args.env_steps, args.updates)
        args.preset = preset
        sources = ["measured by benchmarks/report.py"]
    try:
        preset, size, env, train = select(records, args.preset)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data = series(env, train)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out_json = args.out_dir / "report.json"
    out_md = args.out_dir / "report.md"
    out_png = args.out_dir / "report.png"
    out_json.write_text(
        json.dumps(
            {"preset": preset, "size": size, "sources": sources, "records": env + train}, indent=2
        )
    )
    out_md.write_text(markdown(preset, size, env, train))
    devices = "; ".join(sorted({r["device"] for r in env + train}))
    plot(preset, size, data, out_png, devices)
    for p in (out_json, out_md, out_png):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
