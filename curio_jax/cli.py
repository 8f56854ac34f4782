"""The `curio-jax` command line (host side only).

Invalid arguments exit with status 2 and a one-line message on stderr, never a traceback.
Heavy imports (JAX, navix) happen inside the commands so `--help` and argument errors are fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn


class UsageError(Exception):
    """Bad user input discovered after parsing; reported as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line error messages (exit status 2, no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def micro_batch_list(text: str) -> list[int | None]:
    """'auto,0,256' -> [None, 0, 256]: A2CConfig.micro_batch values (auto: the automatic one)."""
    out: list[int | None] = []
    for t in (t.strip() for t in text.split(",")):
        if t == "auto":
            out.append(None)
        elif t.isdigit():
            out.append(int(t))
        elif t:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated 'auto' or integers >= 0, got {text!r}"
            )
    if not out:
        raise argparse.ArgumentTypeError(f"expected 'auto' or integers >= 0, got {text!r}")
    return out


MICRO_BATCH_HELP = (
    "samples per micro-batch of the update (speed and memory; RND dropout masks are drawn per "
    "piece; 0: the whole batch; default: automatic, 512 on CPU, the whole batch on GPU/TPU; "
    "must divide num_envs x rollout_size)"
)


SEED_BATCH_HELP = (
    "seeds vmapped together per step of the seed loop inside the one program (speed only; "
    "0: all at once; default: automatic, 1 on CPU with one device, all on GPU/TPU or several "
    "devices; must divide the number of seeds run together)"
)


def unit_float(text: str) -> float:
    """A number in [0, 1]."""
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def int_list(text: str) -> list[int]:
    """'5,8,16' -> [5, 8, 16]; every item a positive integer."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def size_list(text: str) -> list[int]:
    vals = int_list(text)
    bad = [v for v in vals if v < 5]
    if bad:
        raise argparse.ArgumentTypeError(f"DoorKey sizes must be >= 5, got {bad[0]}")
    return vals


def out_path(text: str) -> Path:
    p = Path(text)
    if p.exists() and p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file path")
    if not p.parent.exists():
        raise argparse.ArgumentTypeError(f"directory {str(p.parent)!r} does not exist")
    return p


def _write_json(path: Path | None, obj: object) -> None:
    if path is None:
        return
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)
    print(f"wrote {path}")


def _int_at_least(minimum: int, what: str):
    """argparse type: an integer >= minimum, else a one-line error naming `what`."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


positive_int = _int_at_least(1, "a positive integer")
nonneg_int = _int_at_least(0, "a non-negative integer")


def run_dir(text: str) -> Path:
    """A run directory for `train --out`: need not exist, but may not be (or lie under) a file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory path, got an empty string")
    if "\x00" in text:
        raise argparse.ArgumentTypeError(f"invalid path {text!r}")
    p = Path(text)
    try:
        for a in (p, *p.parents):
            if a.exists():
                if not a.is_dir():
                    raise argparse.ArgumentTypeError(f"{str(a)!r} exists and is not a directory")
                break
    except OSError as e:
        raise argparse.ArgumentTypeError(f"invalid path {text!r}: {e.strerror or e}") from None
    return p


def one_line(text: object) -> str:
    """`text` as a single printable line: line breaks and every other non-printable character
    (which `str.splitlines` may treat as a line boundary, e.g. \\x1e) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _config_from_args(args: argparse.Namespace, base=None):
    """The preset (or `base`, a saved config being resumed) with the command-line overrides."""
    from curio_jax import config

    try:
        cfg = config.preset(args.preset) if args.preset is not None else base
        overrides: dict[str, object] = {}
        if args.num_envs is not None:
            overrides["a2c.num_envs"] = args.num_envs
        if args.total_frames is not None:
            overrides["total_frames"] = args.total_frames
        if getattr(args, "log_every", None) is not None:
            overrides["log_every"] = args.log_every
        if getattr(args, "micro_batch", None) is not None:
            overrides["a2c.micro_batch"] = args.micro_batch
        if getattr(args, "seed_batch", None) is not None:
            overrides["a2c.seed_batch"] = args.seed_batch
        return cfg.with_overrides(overrides)
    except ValueError as e:
        raise UsageError(one_line(e)) from None


def _start_distributed(args: argparse.Namespace) -> None:
    """jax.distributed.initialize from --coordinator/--num-processes/--process-id or the
    CURIO_JAX_* environment variables (nothing when neither is given)."""
    from curio_jax.parallel import sharding

    try:
        sharding.initialize(args.coordinator, args.num_processes, args.process_id)
    except sharding.ShardingError as e:
        raise UsageError(one_line(e)) from None


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--devices",
        type=positive_int,
        default=None,
        help="devices to spread the seeds over (default: all visible, over all processes)",
    )
    p.add_argument(
        "--env-shards",
        type=positive_int,
        default=1,
        help="devices per agent: each seed's envs are split over this many devices (1)",
    )
    p.add_argument("--coordinator", default=None, help="multi-host: HOST:PORT of process 0")
    p.add_argument("--num-processes", type=positive_int, default=None, help="multi-host")
    p.add_argument("--process-id", type=nonneg_int, default=None, help="multi-host: 0 .. N-1")


def _run(job: Any) -> Any:
    """Run a training job: a request that cannot be honoured becomes a UsageError (exit 2);
    a failure during the run is printed as one line and gives None (exit 1)."""
    from curio_jax.run import loop as runner

    try:
        return job()
    except runner.RunFailure as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return None
    except (runner.RunError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    except OSError as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return None


def _report_other_process(summaries: list[dict]) -> bool:
    """Processes other than 0 write nothing and return empty summaries."""
    if summaries and not summaries[0]:
        print("done (this process fed its devices; process 0 wrote the results)")
        return True
    return False


def cmd_train(args: argparse.Namespace) -> int:
    from curio_jax.run import loop as runner

    _start_distributed(args)

    saved_run: dict = {}
    if args.resume:
        out = args.out or (Path("runs") / args.preset if args.preset else None)
        if out is None:
            raise UsageError("--resume needs the run directory: --out DIR")
        if args.preset is not None:
            _config_from_args(args)  # an unknown preset is reported as such
        try:
            saved_cfg, saved_run = runner.read_saved_run(out)
        except runner.RunError as e:
            raise UsageError(one_line(e)) from None
        cfg = _config_from_args(args, base=saved_cfg)
    else:
        if args.preset is None:
            raise UsageError("the following argument is required: --preset (or --resume --out DIR)")
        cfg = _config_from_args(args)
        out = args.out or Path("runs") / cfg.name

    def pick(name: str, default: int) -> int:
        given = getattr(args, name)
        return given if given is not None else saved_run.get(name, default)

    try:
        settings = runner.RunSettings(
            seeds=pick("seeds", 1),
            seed=pick("seed", 0),
            checkpoint_every=pick("checkpoint_every", 10),
            keep_checkpoints=pick("keep_checkpoints", 3),
            tensorboard=not args.no_tensorboard,
            devices=args.devices,
            env_shards=args.env_shards,
        )
    except ValueError as e:
        raise UsageError(one_line(e)) from None
    summary = _run(
        lambda: runner.train_run(cfg, out, settings, resume=args.resume, overwrite=args.overwrite)
    )
    if summary is None:
        return 1
    if _report_other_process([summary]):
        return 0
    solved = [s["frames_to_solve"] for s in summary["seeds"]]
    n_solved = sum(x is not None for x in solved)
    print(
        f"done: {summary['frames']:,} frames in {summary['seconds']:.1f}s "
        f"({summary['frames_per_sec']:,.0f} frames/s steady, "
        f"compile {summary['compile_seconds']:.1f}s"
        + (f", {summary['segments']} segments" if summary["segments"] > 1 else "")
        + f"); solved (avg > {cfg.solved_threshold}) by {n_solved}/{len(solved)} seeds -> {out}"
    )
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from curio_jax.run import loop as runner
    from curio_jax.run import sweep

    _start_distributed(args)
    saved: dict = {}
    try:
        if args.resume:
            saved = sweep.read_saved_sweep(args.out)
            saved_cfg, saved_axes = sweep.saved_plan(saved)
            if args.preset is not None:
                _config_from_args(args)  # an unknown preset is reported as such
            cfg = _config_from_args(args, base=saved_cfg)
            axes = [sweep.parse_set(t, cfg) for t in args.set] if args.set else saved_axes
        else:
            if args.preset is None:
                raise UsageError("the following argument is required: --preset")
            cfg = _config_from_args(args)
            axes = [sweep.parse_set(t, cfg) for t in args.set]
        settings = runner.RunSettings(
            seeds=args.seeds if args.seeds is not None else saved.get("seeds", 1),
            seed=args.seed if args.seed is not None else saved.get("seed", 0),
            checkpoint_every=args.checkpoint_every or saved.get("checkpoint_every", 10),
            keep_checkpoints=args.keep_checkpoints or saved.get("keep_checkpoints", 3),
            tensorboard=not args.no_tensorboard,
            devices=args.devices,
            env_shards=args.env_shards,
        )
    except (runner.RunError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    vmap_grid = args.vmap_grid or bool(saved.get("vmap_grid", False))
    summaries = _run(
        lambda: sweep.sweep_run(
            cfg,
            axes,
            args.out,
            settings,
            resume=args.resume,
            overwrite=args.overwrite,
            vmap_grid=vmap_grid,
        )
    )
    if summaries is None:
        return 1
    if _report_other_process(summaries):
        return 0
    first = summaries[0]
    print(
        f"done: {len(summaries)} grid points x {len(first['seeds'])} seeds, "
        f"{sum(s['frames'] for s in summaries):,} frames in {first['seconds']:.1f}s "
        f"(compile {first['compile_seconds']:.1f}s) -> {args.out}"
    )
    for point, summary in zip(sweep.grid(axes), summaries, strict=True):
        solved = [s["frames_to_solve"] for s in summary["seeds"]]
        print(
            f"  {sweep.point_dir_name(point)}: solved (avg > {cfg.solved_threshold}) by "
            f"{sum(x is not None for x in solved)}/{len(solved)} seeds"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from curio_jax.analysis import compare

    try:
        result = compare.compare_runs(
            args.run_dirs, n_boot=args.n_boot, seed=args.seed, threshold=args.threshold
        )
    except (compare.RunDirError, ValueError) as e:
        raise UsageError(one_line(e)) from None
    print(compare.format_table(result))
    if args.json is not None:
        _write_json(args.json, result)
    if args.plot is not None:
        compare.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_bench_env(args: argparse.Namespace) -> int:
    from curio_jax.tools import bench

    print(f"device: {bench.device_description()}")
    records = bench.bench_env(
        args.sizes,
        args.num_envs,
        impls=tuple(args.impls),
        steps=args.steps,
        repeats=args.repeats,
    )
    print()
    print(bench.format_env_table(records))
    _write_json(args.json, records)
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from curio_jax import config
    from curio_jax.tools import bench

    try:
        for n in args.num_envs:
            for mb in args.micro_batch:
                config.preset(args.preset).with_overrides(
                    {"a2c.num_envs": n, "a2c.micro_batch": mb}
                )
        for sb in args.seed_batch:
            a2c = config.A2CConfig(seed_batch=sb)
            for d in args.devices:
                for s in args.seeds:
                    config.seed_batch_size(a2c, s, "cpu", d)
    except ValueError as e:
        raise UsageError(one_line(e)) from None
    import jax

    from curio_jax.parallel import sharding

    visible = jax.device_count()
    for d in args.devices:
        for n in args.num_envs:
            for s in args.seeds:
                try:
                    sharding.make_layout(s, n, d, args.env_shards if d > 1 else 1)
                except sharding.ShardingError as e:
                    raise UsageError(f"cell devices={d} envs={n} seeds={s}: {e}") from None
    print(f"visible devices: {visible}")
    print(f"device: {bench.device_description()}")
    records = bench.bench_train(
        args.preset,
        args.num_envs,
        args.seeds,
        updates=args.updates,
        with_reference=args.with_reference,
        reference_frames=args.reference_frames,
        devices=tuple(args.devices),
        env_shards=args.env_shards,
        micro_batches=tuple(args.micro_batch),
        seed_batches=tuple(args.seed_batch),
        rounds=args.rounds,
        count_flops=args.flops,
    )
    _write_json(args.json, records)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="curio-jax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    tr = sub.add_parser("train", help="train N seeds of a preset in one program")
    tr.add_argument("--preset", default=None, help="e.g. notebook-rnd-5x5 (optional with --resume)")
    tr.add_argument("--seeds", type=positive_int, default=None, help="seeds (default 1)")
    tr.add_argument("--seed", type=nonneg_int, default=None, help="base seed (default 0)")
    tr.add_argument("--num-envs", type=positive_int, default=None)
    tr.add_argument("--micro-batch", type=nonneg_int, default=None, help=MICRO_BATCH_HELP)
    tr.add_argument("--seed-batch", type=nonneg_int, default=None, help=SEED_BATCH_HELP)
    tr.add_argument("--total-frames", type=positive_int, default=None, help="frames per seed")
    tr.add_argument(
        "--log-every",
        type=positive_int,
        default=None,
        help="updates per chunk: one metrics row and progress line each (default: the preset's)",
    )
    tr.add_argument("--out", type=run_dir, default=None, help="run directory (default runs/PRESET)")
    again = tr.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue DIR from its last good checkpoint (options default to the saved ones)",
    )
    again.add_argument(
        "--overwrite", action="store_true", help="delete and replace an existing run directory"
    )
    tr.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="chunks between checkpoints (10)",
    )
    tr.add_argument(
        "--keep-checkpoints", type=positive_int, default=None, help="newest checkpoints kept (3)"
    )
    tr.add_argument(
        "--no-tensorboard", action="store_true", help="do not write TensorBoard event files"
    )
    _add_device_options(tr)
    tr.set_defaults(func=cmd_train)

    sw = sub.add_parser(
        "sweep", help="a grid of traced hyperparameters x N seeds in one compiled program"
    )
    sw.add_argument("--preset", default=None, help="base preset (optional with --resume)")
    sw.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="a swept coefficient and its values (repeat for a grid): lr, gamma, gamma_int, "
        "gae_lambda, adv_coef_ext, adv_coef_int, entropy_coef, value_coef",
    )
    sw.add_argument("--seeds", type=positive_int, default=None, help="seeds per grid point (1)")
    sw.add_argument("--seed", type=nonneg_int, default=None, help="base seed (default 0)")
    sw.add_argument("--num-envs", type=positive_int, default=None)
    sw.add_argument("--micro-batch", type=nonneg_int, default=None, help=MICRO_BATCH_HELP)
    sw.add_argument("--seed-batch", type=nonneg_int, default=None, help=SEED_BATCH_HELP)
    sw.add_argument("--total-frames", type=positive_int, default=None, help="frames per seed")
    sw.add_argument("--log-every", type=positive_int, default=None, help="updates per chunk")
    sw.add_argument("--out", type=run_dir, required=True, help="sweep directory")
    again = sw.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue DIR from its checkpoint")
    again.add_argument("--overwrite", action="store_true", help="delete and replace DIR")
    sw.add_argument("--checkpoint-every", type=positive_int, default=None, help="chunks (10)")
    sw.add_argument("--keep-checkpoints", type=positive_int, default=None, help="kept (3)")
    sw.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    sw.add_argument(
        "--vmap-grid",
        action="store_true",
        help="vmap grid points together with seeds (more parallel work, e.g. on a GPU; equal "
        "to single runs only to float rounding) instead of calling one compiled program per grid "
        "point (bit-identical to single runs on CPU)",
    )
    _add_device_options(sw)
    sw.set_defaults(func=cmd_sweep)

    cp = sub.add_parser("compare", help="statistics over the seeds of finished runs")
    cp.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    cp.add_argument("--json", type=out_path, default=None)
    cp.add_argument("--plot", type=out_path, default=None, metavar="FILE.png")
    cp.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples")
    cp.add_argument("--seed", type=nonneg_int, default=0, help="bootstrap seed")
    cp.add_argument(
        "--threshold",
        type=unit_float,
        default=None,
        help="frames-to-solve of every run at this common average score (from metrics.csv) "
        "instead of each preset's own solved threshold",
    )
    cp.set_defaults(func=cmd_compare)

    bench = sub.add_parser("bench", help="throughput benchmarks")
    bench_sub = bench.add_subparsers(dest="what", required=True, parser_class=OneLineParser)
    be = bench_sub.add_parser("env", help="environment steps/s: curio_jax vs navix vs MiniGrid")
    be.add_argument("--sizes", type=size_list, default=[5, 8, 16])
    be.add_argument("--num-envs", type=int_list, default=[1, 64, 1024, 4096])
    be.add_argument(
        "--impls",
        type=lambda s: s.split(","),
        default=["curio_jax", "navix_symbolic_first_person", "minigrid"],
        help="comma-separated subset of curio_jax,navix_symbolic_first_person,minigrid",
    )
    be.add_argument("--steps", type=int, default=128, help="scan length per timed program")
    be.add_argument("--repeats", type=int, default=3)
    be.add_argument("--json", type=out_path, default=None)
    be.set_defaults(func=cmd_bench_env)
    bt = bench_sub.add_parser("train", help="full-pipeline training frames/s (+ FLOP fraction)")
    bt.add_argument("--preset", default="notebook-rnd-8x8")
    bt.add_argument("--num-envs", type=int_list, default=[32, 512, 2048])
    bt.add_argument("--seeds", type=int_list, default=[1], help="comma-separated seed counts")
    bt.add_argument(
        "--micro-batch",
        type=micro_batch_list,
        default=[None],
        help="comma-separated micro-batch sizes per seed to time, 'auto' and/or integers (0: "
        "whole batch; default auto)",
    )
    bt.add_argument(
        "--seed-batch",
        type=micro_batch_list,
        default=[None],
        help="comma-separated seed-loop batch sizes to time (seeds vmapped together), 'auto' "
        "and/or integers (0: all seeds at once; default auto)",
    )
    bt.add_argument("--updates", type=positive_int, default=10, help="updates per timed chunk")
    bt.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="time every cell this many times, round-robin, and report the median (a shared "
        "machine's slow spells then hit all cells alike)",
    )
    bt.add_argument(
        "--no-flops",
        dest="flops",
        action="store_false",
        help="skip XLA's FLOP count and the fraction of the matmul rate (saves three "
        "compilations per cell, tens of seconds each on a GPU)",
    )
    bt.add_argument("--with-reference", action="store_true", help="also time the torch reference")
    bt.add_argument("--reference-frames", type=positive_int, default=51_200)
    bt.add_argument(
        "--devices",
        type=int_list,
        default=[1],
        help="device counts to time, e.g. 1,4 (scaling efficiency against 1; default 1)",
    )
    bt.add_argument(
        "--env-shards", type=positive_int, default=1, help="devices per agent in multi-device cells"
    )
    bt.add_argument("--json", type=out_path, default=None)
    bt.set_defaults(func=cmd_bench_train)
    add_eval_parsers(sub)
    return parser


door_size = _int_at_least(5, "a DoorKey size, an integer >= 5")


def cmd_eval(args: argparse.Namespace) -> int:
    import importlib.util

    from curio_jax.analysis import evaluate as ev

    if args.backend == "minigrid":
        missing = [m for m in ("gymnasium", "minigrid") if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(
                f"--backend minigrid needs {', '.join(missing)}: pip install 'curio_jax[reference]'"
            )
    if args.gif is not None and importlib.util.find_spec("PIL") is None:
        raise UsageError("--gif needs pillow: pip install 'curio_jax[plot]'")
    if args.torch_weights is not None and args.seed_index is not None:
        raise UsageError("--seed-index applies to --checkpoint runs only")
    try:
        if args.checkpoint is not None:
            loaded = ev.load_run_params(args.checkpoint, args.seed_index or 0)
        else:
            loaded = ev.load_torch_params(args.torch_weights)
    except ev.ParamsError as e:
        raise UsageError(str(e)) from None
    print(f"weights: {loaded.description}")
    metrics, episodes = ev.evaluate(
        loaded.params, args.size, args.episodes, backend=args.backend, seed=args.seed
    )
    metrics = {**metrics, "size": args.size, "seed": args.seed}
    print(
        f"DoorKey-{args.size}x{args.size}, {metrics['episodes']} episodes ({args.backend} "
        f"backend, seed {args.seed}): success rate {metrics['success_rate']:.3f}, mean return "
        f"{metrics['mean_return']:.4f}, mean length {metrics['mean_length']:.1f}"
    )
    _write_json(args.json, metrics)
    if args.gif is not None:
        from curio_jax.analysis import render

        n = int(episodes.lengths[0])
        tile = 32 if args.size <= 8 else 16
        frames = render.episode_frames(episodes.layouts[0], episodes.actions[0, :n], tile)
        render.save_gif(frames, args.gif, fps=args.fps)
        outcome = "reached the goal" if episodes.terminated[0] else "did not reach the goal"
        print(f"wrote {args.gif} (episode 0: {n} steps, {outcome})")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from curio_jax.reference import crosscheck

    missing = crosscheck.missing_modules()
    if missing:
        raise UsageError(
            f"crosscheck needs the reference extra (missing: {', '.join(missing)}): "
            "pip install 'curio_jax[reference]'"
        )
    print(f"curio-jax crosscheck ({'quick' if args.quick else 'full'})")
    checks = crosscheck.run_checks(quick=args.quick, log=print)
    n_pass = sum(c.passed for c in checks)
    print(f"{n_pass}/{len(checks)} checks passed")
    return 0 if n_pass == len(checks) else 1


def add_eval_parsers(sub: argparse._SubParsersAction) -> None:
    """The `eval` and `crosscheck` subcommands."""
    ev = sub.add_parser("eval", help="evaluate a policy: success rate, return, episode length")
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint",
        type=Path,
        metavar="DIR",
        help="a curio-jax train run directory, its checkpoints/ directory or one ckpt file",
    )
    src.add_argument(
        "--torch-weights", type=Path, metavar="FILE.pth", help="a seed-format PyTorch checkpoint"
    )
    ev.add_argument("--size", type=door_size, required=True, help="DoorKey side (>= 5)")
    ev.add_argument("--episodes", type=positive_int, default=100)
    ev.add_argument("--backend", choices=("jax", "minigrid"), default="jax")
    ev.add_argument("--seed", type=nonneg_int, default=0, help="layouts and action sampling")
    ev.add_argument(
        "--seed-index", type=nonneg_int, default=None, help="which seed of the run (default 0)"
    )
    ev.add_argument("--gif", type=out_path, default=None, help="render episode 0 into a GIF")
    ev.add_argument("--fps", type=positive_int, default=8, help="GIF frames per second")
    ev.add_argument("--json", type=out_path, default=None)
    ev.set_defaults(func=cmd_eval)

    cc = sub.add_parser(
        "crosscheck", help="cross-checks against gymnasium MiniGrid and the PyTorch reference"
    )
    cc.add_argument("--quick", action="store_true", help="fewer steps and cases (~30 s)")
    cc.set_defaults(func=cmd_crosscheck)


def _validate(args: argparse.Namespace) -> None:
    if getattr(args, "func", None) is cmd_bench_env:
        known = {"curio_jax", "navix_symbolic_first_person", "minigrid"}
        unknown = [i for i in args.impls if i not in known]
        if unknown:
            raise UsageError(f"unknown impl {unknown[0]!r}; choose from {', '.join(sorted(known))}")
        if args.steps < 1 or args.repeats < 1:
            raise UsageError("--steps and --repeats must be >= 1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _validate(args)
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"curio-jax: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("curio-jax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
