"""Reading runs for `curio-jax compare`: run directories, pools of them and recorded runs.

A run directory, as written by `curio-jax train` (see docs/rundir.md), holds
`config.json` (the TrainConfig as a nested dict), `metrics.csv` (one row per logged update per
seed) and `summary.json` (per-seed frames-to-solve and final score, run totals). `load_run`
reads and validates one (`load_unfinished` / `load_unfinished_reference` one still running);
`load_recorded` reads ``FILE.json:LABEL`` (a run recorded in a compare JSON) and `pool_runs`
pools ``DIR+DIR`` (run directories of one config made in separate programs) into one run
(`curio_jax.analysis.inputs.load` reads any of them from its name, study records too).
`read_until` and `with_threshold` give a run as read up to a frame count or as
scored at another solved threshold. Every failure is a `RunDirError` with a one-line message.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curio_jax.analysis import reference_runs
from curio_jax.config import TrainConfig, preset

REFERENCE_RUN_FILE = reference_runs.RUN_FILE
REQUIRED_COLUMNS = ("seed", "frames", "avg_return_last100")
# Config fields that make two runs' scores incomparable when they differ.
INCOMPATIBLE_FIELDS = ("env.size",)


class RunDirError(Exception):
    """A run directory is missing, incomplete or corrupt (the message is one line)."""


@dataclass(frozen=True)
class Run:
    """One run directory, validated.

    ``final_scores[i]`` and ``frames_to_solve[i]`` belong to seed ``seeds[i]`` (a final score
    is NaN for a seed that finished no episode); ``metrics`` maps every numeric column of
    metrics.csv to its values, one per row."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]  # column -> float [rows]
    seeds: np.ndarray  # int [n]
    final_scores: np.ndarray  # float [n]
    frames_to_solve: tuple[int | None, ...]  # [n], None where the seed never solved
    budget: int  # frames each seed ran (its frame budget): where unsolved seeds are censored
    # a run read from a committed compare JSON (`load_recorded`): its entry there; metrics empty
    recorded: dict[str, Any] | None = None
    # a pooled run (`pool_runs`): the run directories it pools and each one's own seed numbers
    parts: tuple[tuple[Path, tuple[int, ...]], ...] = ()
    # a slice record of a study (curio_jax.analysis.records): its run's base seed (run.json's)
    base_seed: int | None = None

    @property
    def size(self) -> int:
        return int(self.config["env"]["size"])

    @property
    def solved_threshold(self) -> float:
        return float(self.config["solved_threshold"])

    @property
    def own_solved_threshold(self) -> float:
        """The preset's own threshold (a recorded run: as its compare JSON says)."""
        if self.recorded is not None:
            return float(self.recorded.get("own_solved_threshold", self.solved_threshold))
        return self.solved_threshold

    @property
    def preset(self) -> str:
        return str(self.summary.get("preset", self.config.get("name", "?")))

    @property
    def impl(self) -> str:
        return str(self.summary.get("impl", "?"))

    @property
    def stops_at_solve(self) -> bool:
        """Whether each seed stopped when it solved (the notebook's loop, as the torch reference
        runs it): its "final" score is then the score at the solve point, not at the budget.
        Read from summary.json's ``stops_at_solve``, or seen in per-seed ``frames`` below the
        budget for solved seeds."""
        if isinstance(self.summary.get("stops_at_solve"), bool):
            return self.summary["stops_at_solve"]
        records = self.summary.get("seeds", [])
        return any(
            isinstance(r, dict)
            and r.get("frames_to_solve") is not None
            and is_int(r.get("frames"))
            and r["frames"] < self.budget
            for r in records
        )

    def solve_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(times [n], events [n]): frames-to-solve, or the budget (censored) where unsolved."""
        events = np.array([f is not None for f in self.frames_to_solve], dtype=bool)
        times = np.array(
            [self.budget if f is None else f for f in self.frames_to_solve], dtype=float
        )
        return times, events

    def curve_matrix(self, column: str = "avg_return_last100") -> tuple[np.ndarray, np.ndarray]:
        """(frames [P], values [n, P]): a metrics.csv column per seed, by default the logged
        average score (NaN where a seed has no row at that frame count or, for the score, no
        finished episode yet)."""
        if self.recorded is not None:
            raise RunDirError(f"{self.path}: a recorded run has no per-seed metrics.csv rows")
        if column not in self.metrics:
            raise RunDirError(f"{self.path / 'metrics.csv'}: no numeric column {column!r}")
        seed_col = self.metrics["seed"].astype(np.int64)
        frames_col = self.metrics["frames"].astype(np.int64)
        values = self.metrics[column]
        keep = np.isin(seed_col, self.seeds)
        frames = np.unique(frames_col[keep])
        out = np.full((self.seeds.size, frames.size), np.nan)
        seed_index = {int(s): i for i, s in enumerate(self.seeds)}
        for s, f, v in zip(seed_col[keep], frames_col[keep], values[keep], strict=True):
            out[seed_index[int(s)], np.searchsorted(frames, f)] = v
        return frames, out


# --------------------------------------------------------------------------- loading


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunDirError(f"{path.parent}: missing {path.name}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise RunDirError(f"{path}: not valid JSON ({msg})") from None


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_config(path: Path, cfg: Any, where: Path | None = None) -> dict[str, Any]:
    where = where or path / "config.json"
    if not isinstance(cfg, dict):
        raise RunDirError(f"{where}: expected a JSON object (the TrainConfig)")
    env = cfg.get("env")
    if not isinstance(env, dict) or not is_int(env.get("size")) or env["size"] < 5:
        raise RunDirError(f"{where}: env.size is missing or not an integer >= 5")
    thr = cfg.get("solved_threshold")
    if not is_number(thr) or not math.isfinite(thr):
        raise RunDirError(f"{where}: solved_threshold is missing or not a finite number")
    return cfg


def _frame_budget(path: Path, config: dict[str, Any], summary: dict[str, Any]) -> int:
    """Frames each seed ran: summary.json's "frames_per_seed" when present (its "frames" is the
    total over all seeds), otherwise config.json's total_frames rounded down to whole updates of
    train.num_envs * train.rollout_size frames (a2c.* in older configs), as
    TrainConfig.num_updates does."""
    per_seed = summary.get("frames_per_seed")
    if per_seed is not None:
        if not is_int(per_seed) or per_seed < 1:
            raise RunDirError(
                f"{path / 'summary.json'}: frames_per_seed must be a positive integer"
            )
        return per_seed
    total = config.get("total_frames")
    if not is_int(total) or total < 1:
        raise RunDirError(
            f"{path / 'config.json'}: total_frames is missing or not a positive integer"
        )
    for group in ("train", "a2c"):  # a2c: configs written before the groups were renamed
        g = config.get(group)
        if isinstance(g, dict) and is_int(g.get("num_envs")) and is_int(g.get("rollout_size")):
            per_update = g["num_envs"] * g["rollout_size"]
            if per_update >= 1 and total >= per_update:
                return total // per_update * per_update
    return total


def _check_summary(path: Path, summary: Any, frames: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    where = path / "summary.json"
    seeds_in = summary.get("seeds")
    if not isinstance(seeds_in, list) or not seeds_in:
        raise RunDirError(f"{where}: 'seeds' is missing or empty")
    seeds, finals, solves = [], [], []
    for k, rec in enumerate(seeds_in):
        if not isinstance(rec, dict):
            raise RunDirError(f"{where}: seeds[{k}] is not an object")
        seed, fts = rec.get("seed"), rec.get("frames_to_solve")
        final = rec.get("final_avg_return_last100")
        if not is_int(seed):
            raise RunDirError(f"{where}: seeds[{k}].seed is missing or not an integer")
        if fts is not None and (not is_int(fts) or not 0 <= fts <= frames):
            raise RunDirError(
                f"{where}: seed {seed}: frames_to_solve must be null or an integer in "
                f"[0, {frames}] (the frame budget of a seed), got {fts!r}"
            )
        # null: the seed finished no episode within its budget (a very short run); it has no
        # final score (NaN here, left out of the final-score statistics with a warning)
        if final is not None and (not is_number(final) or not math.isfinite(final)):
            raise RunDirError(
                f"{where}: seed {seed}: final_avg_return_last100 must be null (no episode "
                f"finished) or a finite number, got {final!r}"
            )
        seeds.append(seed)
        finals.append(math.nan if final is None else float(final))
        solves.append(fts)
    if len(set(seeds)) != len(seeds):
        raise RunDirError(f"{where}: duplicate seed numbers")
    return np.array(seeds, np.int64), np.array(finals), tuple(solves)


def _parse_float(text: str) -> float:
    t = text.strip()
    if t == "" or t.lower() in ("nan", "none", "null"):
        return math.nan
    return float(t)


def _read_metrics(path: Path, torn_tail: bool = False) -> dict[str, np.ndarray]:
    """The numeric columns of metrics.csv. ``torn_tail``: a last line with too few fields (a
    run still appending) is dropped instead of refused."""
    where = path / "metrics.csv"
    if not where.is_file():
        raise RunDirError(f"{path}: missing metrics.csv")
    try:
        with where.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise RunDirError(f"{where}: unreadable CSV ({type(e).__name__})") from None
    if not rows:
        raise RunDirError(f"{where}: empty file")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise RunDirError(f"{where}: missing column(s) {', '.join(missing)} in the header")
    body = [r for r in rows[1:] if r]
    if torn_tail and body and len(body[-1]) < len(header):
        body.pop()
    if not body:
        raise RunDirError(f"{where}: no data rows")
    for line, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise RunDirError(
                f"{where}: line {line} has {len(r)} fields, the header has {len(header)}"
            )
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        try:
            col = np.array([_parse_float(r[j]) for r in body])
        except ValueError:
            if name in REQUIRED_COLUMNS:
                bad = next(i for i, r in enumerate(body) if not _floatable(r[j]))
                raise RunDirError(
                    f"{where}: line {bad + 2}: column {name} is not a number: {body[bad][j]!r}"
                ) from None
            continue  # an unknown non-numeric column: ignored
        out[name] = col
    for name in ("seed", "frames"):
        col = out[name]
        if not np.isfinite(col).all() or (col != np.round(col)).any() or (col < 0).any():
            bad = int(np.flatnonzero(~np.isfinite(col) | (col != np.round(col)) | (col < 0))[0])
            raise RunDirError(
                f"{where}: line {bad + 2}: column {name} must be a non-negative integer"
            )
    return out


def _floatable(text: str) -> bool:
    try:
        _parse_float(text)
    except ValueError:
        return False
    return True


def load_run(path: str | Path, unfinished: bool = False) -> Run:
    """Read and validate one run directory. ``unfinished``: a run without summary.json (still
    running, or stopped before its budget) is read as far as it got: a `curio-jax train` run
    (`load_unfinished`) or a PyTorch reference run (`load_unfinished_reference`). Raises
    RunDirError with a one-line message."""
    p = Path(path)
    if not p.exists():
        raise RunDirError(f"{p}: no such run directory")
    if not p.is_dir():
        raise RunDirError(f"{p}: not a directory (expected a run directory)")
    if not (p / "summary.json").is_file():
        if unfinished:
            if (p / REFERENCE_RUN_FILE).is_file():
                return load_unfinished_reference(p)
            return load_unfinished(p)
        raise RunDirError(
            f"{p}: missing summary.json (an unfinished run? `compare --unfinished` reads one "
            "as far as it got)"
        )
    config = _check_config(p, _read_json(p / "config.json"))
    summary = _read_json(p / "summary.json")
    if not isinstance(summary, dict):
        raise RunDirError(f"{p / 'summary.json'}: expected a JSON object")
    budget = _frame_budget(p, config, summary)
    seeds, finals, solves = _check_summary(p, summary, budget)
    metrics = _read_metrics(p)
    absent = sorted(set(seeds.tolist()) - set(metrics["seed"].astype(np.int64).tolist()))
    if absent:
        raise RunDirError(f"{p / 'metrics.csv'}: no rows for seed(s) {absent} of summary.json")
    return Run(
        path=p,
        config=config,
        summary=summary,
        metrics=metrics,
        seeds=seeds,
        final_scores=finals,
        frames_to_solve=solves,
        budget=budget,
    )


def _first_above(metrics: dict[str, np.ndarray], threshold: float) -> dict[int, int]:
    """Seed -> frames of its first logged row whose average score is above ``threshold`` (the
    runner's rule for frames-to-solve); seeds that never pass are absent."""
    seed_col = metrics["seed"].astype(np.int64)
    frames_col = metrics["frames"].astype(np.int64)
    values = metrics["avg_return_last100"]
    first: dict[int, int] = {}
    for i in np.argsort(frames_col, kind="stable"):
        s, v = int(seed_col[i]), float(values[i])
        if s not in first and math.isfinite(v) and v > threshold:
            first[s] = int(frames_col[i])
    return first


def load_unfinished(path: str | Path) -> Run:
    """A `curio-jax train` run directory without summary.json (still running, or stopped
    before its budget), as a run that ended at the last frame count every seed has logged:
    that is its budget (unsolved seeds are censored there), its final scores are the averages
    logged there, its frames-to-solve the runner's (first logged average above the config's
    solved threshold); rows after it are left out. The seeds are run.json's. summary
    ``unfinished`` is true and ``planned_frames_per_seed`` is the config's budget."""
    p = Path(path)
    config = _check_config(p, _read_json(p / "config.json"))
    info = _read_json(p / "run.json")
    if not isinstance(info, dict) or not is_positive_int(info.get("seeds")):
        raise RunDirError(
            f"{p / 'run.json'}: 'seeds' is missing or not a positive integer (an unfinished "
            "run is read from a `curio-jax train` run directory)"
        )
    seeds = np.arange(info["seeds"], dtype=np.int64)
    metrics = _read_metrics(p, torn_tail=True)
    seed_col = metrics["seed"].astype(np.int64)
    absent = [int(s) for s in seeds if not (seed_col == s).any()]
    if absent:
        raise RunDirError(f"{p / 'metrics.csv'}: no rows yet for seed(s) {absent}")
    cut = _common_cut(metrics, seeds, running=seeds)
    return _cut_unfinished(p, config, "curio_jax", seeds, metrics, cut, ended=())


def load_unfinished_reference(path: str | Path) -> Run:
    """A PyTorch reference run directory (`python -m curio_jax.reference.train --out DIR`)
    without summary.json, read as far as it got: its finished seeds from DIR/seeds, a running
    one as of its last checkpoint. It ends at the last frame count every running seed has
    logged (a finished seed that stopped at its solve before that keeps its solve; one that
    ran on past it is cut there); seeds not started yet are left out (summary
    ``seeds_not_started``). Reads the rows files beside the checkpoints, without torch."""
    p = Path(path)
    try:
        progress = reference_runs.read_progress(p)
    except reference_runs.ReferenceRunError as e:
        raise RunDirError(str(e)) from None
    config = _check_config(p, progress.settings.get("config"), where=p / REFERENCE_RUN_FILE)
    started = progress.ended + progress.running
    if not progress.rows:
        raise RunDirError(f"{p}: no seed has logged yet (nothing checkpointed)")
    columns = [c for c in progress.rows[0] if all(is_number(r.get(c)) for r in progress.rows)]
    metrics = {c: np.array([float(r[c]) for r in progress.rows]) for c in columns}
    seeds = np.array([s for s in progress.settings["seeds"] if s in started], dtype=np.int64)
    cut = _common_cut(metrics, seeds, running=np.array(progress.running, dtype=np.int64))
    extra = {"seeds_not_started": list(progress.not_started)}
    return _cut_unfinished(p, config, "torch_reference", seeds, metrics, cut, progress.ended, extra)


def _common_cut(metrics: dict[str, np.ndarray], seeds: np.ndarray, running: np.ndarray) -> int:
    """The last frame count every seed in ``running`` has logged; with none running, the
    last any seed in ``seeds`` has."""
    seed_col = metrics["seed"].astype(np.int64)
    frames_col = metrics["frames"].astype(np.int64)
    last = {int(s): int(frames_col[seed_col == s].max()) for s in seeds}
    return min((last[int(s)] for s in running), default=max(last.values()))


def _cut_unfinished(
    p: Path,
    config: dict[str, Any],
    impl: str,
    seeds: np.ndarray,
    metrics: dict[str, np.ndarray],
    cut: int,
    ended: Sequence[int],
    extra: dict[str, Any] | None = None,
) -> Run:
    """An unfinished run of ``seeds`` read up to ``cut`` frames per seed (its budget now;
    rows after it are left out): frames-to-solve by the runner's rule (first logged average
    above the solved threshold), each seed's final score its last average at or before the
    cut; unsolved seeds are censored at the cut. ``ended``: seeds whose loop ended (the
    reference's stops at its solve), so that a solved one's final score is its solve's."""
    keep = np.isin(metrics["seed"].astype(np.int64), seeds) & (metrics["frames"] <= cut)
    metrics = {k: v[keep] for k, v in metrics.items()}
    seed_col = metrics["seed"].astype(np.int64)
    finals = np.array(
        [
            metrics["avg_return_last100"][seed_col == s][-1] if (seed_col == s).any() else math.nan
            for s in seeds
        ]
    )
    finals[~np.isfinite(finals)] = math.nan
    first = _first_above(metrics, float(config["solved_threshold"]))
    solves = tuple(first.get(int(s)) for s in seeds)
    ended = [int(s) for s in ended]
    stopped = any(f is not None and int(s) in ended for s, f in zip(seeds, solves, strict=True))
    summary = {
        "preset": config.get("name", "?"),
        "impl": impl,
        "seeds": [
            {"seed": int(s), "frames_to_solve": f, "final_avg_return_last100": json_number(v)}
            for s, f, v in zip(seeds, solves, finals, strict=True)
        ],
        "frames_per_seed": cut,
        "planned_frames_per_seed": _frame_budget(p, config, {}),
        "stops_at_solve": stopped,
        "unfinished": True,
        "seeds_ended": ended,
        **(extra or {}),
    }
    return Run(
        path=p,
        config=config,
        summary=summary,
        metrics=metrics,
        seeds=seeds,
        final_scores=finals,
        frames_to_solve=solves,
        budget=cut,
    )


POOL_SEP = "+"


def _base_seed(run: Run) -> int | None:
    """The base seed of a `curio-jax train` run (run.json "seed"; seed i of it is
    jax.random.split(jax.random.key(base), seeds)[i]), None when run.json does not say."""
    if run.base_seed is not None:
        return run.base_seed
    try:
        info = json.loads((run.path / "run.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(info, dict) and is_int(info.get("seed")) and is_int(info.get("seeds")):
        return int(info["seed"])
    return None


def pool_runs(runs: Sequence[Run], name: str | None = None) -> Run:
    """Run directories of one config (seeds run in separate programs, sessions or machines)
    as one run with all their seeds, in the order given. Every part must be a run directory
    (not a recorded run or another pool) with the same config, implementation and frame budget
    as the first; parts read unfinished (`load_unfinished`) are all read to the least frame
    count any part has reached. Seed numbers are kept when no two parts share
    one (the PyTorch reference numbers its seeds, e.g. 10 and 11); `curio-jax train` numbers
    the seeds of every run 0..n-1 and tells runs apart by their base seed (`--seed`), so parts
    with different base seeds are renumbered 0..N-1 in order (the original numbers stay in
    ``Run.parts``). Parts that may hold the same seeds twice (the same directory, the same
    base seed, or overlapping numbers with no base seed to tell them apart) are refused. The
    pool's metrics are the metrics.csv columns every part has; its frames per second is that
    of all its frames over all its seconds of training. Raises RunDirError."""
    runs = list(runs)
    name = name or POOL_SEP.join(str(r.path) for r in runs)
    if len(runs) < 2:
        raise RunDirError(f"{name}: a pooled run needs two or more run directories")
    first = runs[0]
    for r in runs:
        if r.recorded is not None or r.parts:
            what = "a recorded run" if r.recorded is not None else "a pooled run"
            raise RunDirError(f"{name}: {r.path} is {what}; only run directories can be pooled")
    if any(r.summary.get("unfinished") for r in runs):
        # parts read while running end at different frame counts: all are read to the least
        cut = min(r.budget for r in runs)
        runs = [r if r.budget == cut else _read_to(r, cut) for r in runs]
        first = runs[0]
    for r in runs[1:]:
        diffs = config_differences(first, r)
        if diffs:
            raise RunDirError(
                f"{name}: cannot pool {r.path} with {first.path}, they differ in "
                + "; ".join(diffs)
            )
        if r.budget != first.budget:
            raise RunDirError(
                f"{name}: cannot pool {r.path} with {first.path}: frame budgets {r.budget} vs "
                f"{first.budget}"
            )
    where = [r.path.resolve() for r in runs]
    if len(set(where)) != len(where):
        raise RunDirError(f"{name}: the same run directory is pooled twice")
    numbers = [int(s) for r in runs for s in r.seeds]
    renumber = len(set(numbers)) != len(numbers)
    if renumber:
        bases = [_base_seed(r) for r in runs]
        if first.impl != "curio_jax" or None in bases or len(set(bases)) != len(bases):
            raise RunDirError(
                f"{name}: the parts share seed numbers and nothing shows they are different "
                "seeds (curio-jax train runs need different base seeds, run.json 'seed')"
            )
    columns = set.intersection(*(set(r.metrics) for r in runs))
    metrics: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    seeds, records, offset = [], [], 0
    for r in runs:
        new = np.arange(offset, offset + r.seeds.size) if renumber else r.seeds
        offset += r.seeds.size
        seeds.append(new)
        mapping = {int(a): int(b) for a, b in zip(r.seeds, new, strict=True)}
        # rows of seeds the summary does not list (none in a valid run) are dropped
        rows = np.isin(r.metrics["seed"].astype(np.int64), r.seeds)
        for c in columns:
            col = r.metrics[c][rows]
            if c == "seed":
                col = np.array([mapping[int(s)] for s in col], dtype=float)
            metrics[c].append(col)
        for rec, s in zip(r.summary["seeds"], new, strict=True):
            records.append({**rec, "seed": int(s)})
    fps = [r.summary.get("frames_per_sec") for r in runs]
    done = [r.summary.get("frames") for r in runs]
    rate = None
    if all(is_number(x) and x > 0 for x in fps) and all(is_number(x) for x in done):
        rate = sum(done) / sum(f / x for f, x in zip(done, fps, strict=True))
    seconds = [r.summary.get("seconds") for r in runs]
    totals = {
        "frames": sum(done) if all(is_number(x) for x in done) else None,
        "seconds": sum(seconds) if all(is_number(x) for x in seconds) else None,
        "frames_per_sec": rate,
    }
    summary = {
        "preset": first.preset,
        "impl": first.impl,
        "seeds": records,
        "frames_per_seed": first.budget,
        "stops_at_solve": any(r.stops_at_solve for r in runs),
        **{k: v for k, v in totals.items() if v is not None},
    }
    if any(r.summary.get("unfinished") for r in runs):
        summary["unfinished"] = True
        summary["planned_frames_per_seed"] = first.summary.get("planned_frames_per_seed")
    return Run(
        path=Path(name),
        config=first.config,
        summary=summary,
        metrics={c: np.concatenate(v) for c, v in metrics.items()},
        seeds=np.concatenate(seeds).astype(np.int64),
        final_scores=np.concatenate([r.final_scores for r in runs]),
        frames_to_solve=tuple(f for r in runs for f in r.frames_to_solve),
        budget=first.budget,
        parts=tuple((r.path, tuple(int(s) for s in r.seeds)) for r in runs),
    )


def _read_to(run: Run, cut: int) -> Run:
    """A run directory's run (finished or read unfinished) read only up to ``cut`` frames per
    seed, as an unfinished run (`_cut_unfinished`)."""
    ended = run.summary.get("seeds_ended")
    if ended is None:  # finished: if it stops at solve, every solved seed stopped there
        ended = [int(s) for s in run.seeds] if run.stops_at_solve else []
    extra = {k: run.summary[k] for k in ("seeds_not_started",) if k in run.summary}
    return _cut_unfinished(
        run.path, run.config, run.impl, run.seeds, run.metrics, cut, ended, extra
    )


def read_until(run: Run, frames: int) -> Run:
    """``run`` read only up to ``frames`` frames per seed, so that runs with different budgets
    (a 60M-frame run and the notebook's 19.9M) are compared at one: its rows after that are
    left out, that is its budget (unsolved seeds are censored there), its final scores the
    averages logged at or before it, a solve after it does not count. A run whose budget is
    no more than ``frames`` is returned as it is. Its summary says ``read_until`` and
    ``full_budget``. RunDirError for a recorded run (a compare JSON keeps no rows)."""
    if not is_positive_int(frames):
        raise ValueError(f"frames must be a positive integer, got {frames!r}")
    if run.budget <= frames:
        return run
    if run.recorded is not None:
        raise RunDirError(
            f"{run.path}: a recorded run cannot be read up to {frames} frames (its budget is "
            f"{run.budget} and a compare JSON keeps no per-seed rows)"
        )
    cut = _read_to(run, frames)
    summary = {
        **cut.summary,
        "unfinished": bool(run.summary.get("unfinished")),
        "read_until": frames,
        "full_budget": run.budget,
    }
    return replace(cut, summary=summary, parts=run.parts)


def is_positive_int(x: Any) -> bool:
    return is_int(x) and x > 0


def _recorded_field(where: str, entry: dict[str, Any], name: str, check: Any, what: str) -> Any:
    value = entry.get(name)
    if not check(value):
        raise RunDirError(f"{where}: {name!r} should be {what}, got {value!r}")
    return value


def load_recorded(file: str | Path, label: str) -> Run:
    """The run labelled ``label`` in a JSON written by `compare --json`, as a Run for comparing
    new runs with committed results (docs/results/...): per-seed final scores and
    frames-to-solve at the JSON's threshold, the frame budget and the mean score curve. It has
    no metrics.csv rows, so it cannot be re-scored at another threshold and has no curves of
    other metrics. Its config is the named preset's as this version defines it, with the
    recorded threshold and budget (the JSON does not store configs). A JSON written before
    compare recorded ``stops_at_solve`` counts as stopping at solve (final scores unused)."""
    path = Path(file)
    data = _read_json(path)
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not isinstance(data.get("settings"), dict):
        raise RunDirError(f"{path}: not a JSON written by `curio-jax compare --json`")
    labels = [r.get("label") for r in runs if isinstance(r, dict)]
    entry = next((r for r in runs if isinstance(r, dict) and r.get("label") == label), None)
    if entry is None:
        raise RunDirError(
            f"{path}: no run labelled {label!r} (labels: {', '.join(map(str, labels))})"
        )
    where = f"{path}: run {label!r}"
    budget = _recorded_field(where, entry, "budget", lambda v: is_int(v) and v > 0, "a frame count")
    size = _recorded_field(where, entry, "size", lambda v: is_int(v) and v > 0, "a grid size")
    threshold = _recorded_field(where, entry, "solved_threshold", is_number, "a number")
    records = _recorded_field(
        where, entry, "seeds", lambda v: isinstance(v, list) and len(v) > 0, "a list of seeds"
    )
    curve = entry.get("curve")
    if not isinstance(curve, dict) or not all(
        k in curve for k in ("frames", "mean", "low", "high")
    ):
        raise RunDirError(f"{where}: no mean score curve ('curve')")
    seeds, finals, solves = [], [], []
    for r in records:
        ok = (
            isinstance(r, dict)
            and is_int(r.get("seed"))
            and "final" in r
            and (r["final"] is None or is_number(r["final"]))
            and (r.get("frames_to_solve") is None or is_int(r.get("frames_to_solve")))
        )
        if not ok:
            raise RunDirError(f"{where}: a malformed seed record {r!r}")
        seeds.append(int(r["seed"]))
        finals.append(math.nan if r["final"] is None else float(r["final"]))
        solves.append(r["frames_to_solve"])
    name = str(entry.get("preset", "?"))
    try:
        config = preset(name).to_dict(complete=True)
    except ValueError:  # a preset this version no longer has
        config = {"name": name, "env": {"size": size}}
    config["env"]["size"] = size
    config.update(solved_threshold=float(threshold), total_frames=budget)
    summary: dict[str, Any] = {
        "preset": name,
        "impl": entry.get("impl", "?"),
        "frames_per_sec": entry.get("frames_per_sec"),
        "seconds": entry.get("seconds"),
        "stops_at_solve": entry.get("stops_at_solve", True) is not False,
    }
    return Run(
        path=Path(f"{path}:{label}"),
        config=config,
        summary=summary,
        metrics={},
        seeds=np.array(seeds, dtype=np.int64),
        final_scores=np.array(finals, dtype=float),
        frames_to_solve=tuple(solves),
        budget=int(budget),
        recorded=entry,
    )


def with_threshold(run: Run, threshold: float) -> Run:
    """``run`` as if ``threshold`` had been its solved threshold: each seed's frames-to-solve
    recomputed from metrics.csv as the frames of its first logged row whose average score is
    above ``threshold`` (the runner's rule), None where none is. ValueError for a threshold
    outside [0, 1], or above the own threshold of a run that stopped each seed when it solved
    (its scores after that point were never logged)."""
    if not is_number(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if run.recorded is not None:
        if float(threshold) != run.solved_threshold:
            raise ValueError(
                f"{run.path}: recorded at threshold {run.solved_threshold:g}; its frames to "
                f"pass {threshold:g} are unknown (compare at {run.solved_threshold:g})"
            )
        return run
    if run.stops_at_solve and threshold > run.solved_threshold:
        raise ValueError(
            f"{run.path}: its seeds stopped when they passed {run.solved_threshold:g}, so frames "
            f"to pass {threshold:g} are unknown; use a threshold <= {run.solved_threshold:g}"
        )
    first = _first_above(run.metrics, threshold)
    config = {**run.config, "solved_threshold": float(threshold)}
    return replace(run, config=config, frames_to_solve=tuple(first.get(int(s)) for s in run.seeds))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(a: Run, b: Run) -> list[str]:
    """'field: value_a vs value_b' for every differing config field (dotted names), plus the
    implementation when the two summaries name different ones. A field missing from one
    config.json (written before the field existed) counts as that field's default."""

    defaults = _flatten(TrainConfig().to_dict(complete=True))
    fa, fb = _flatten(a.config), _flatten(b.config)
    out = []
    for key in sorted(set(fa) | set(fb)):
        missing = defaults.get(key, "<absent>")
        va, vb = fa.get(key, missing), fb.get(key, missing)
        if va != vb:
            out.append(f"{key}: {va} vs {vb}")
    if a.impl != b.impl:
        out.append(f"impl: {a.impl} vs {b.impl}")
    return out


def json_number(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
