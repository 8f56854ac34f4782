"""The run directory's parts (curio_jax.run.rundir): metrics.csv by column name, truncation on
resume, atomic writes and the directory lock."""

from __future__ import annotations

from curio_jax.core.metrics import metric_columns
from curio_jax.run.rundir import MetricsCSV, read_rows


def test_truncate_metrics_keeps_whole_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    header = ",".join(metric_columns())
    tail = ",".join(["0.5"] * (len(metric_columns()) - 3))
    lines = [header] + [f"{s},{u},{u * 10},{tail}" for u in (2, 4, 6) for s in (0, 1)]
    lines.append("0,8,80,0.5,0.5")  # a row cut short by a kill
    path.write_text("\r\n".join(lines))
    logs: list[str] = []
    MetricsCSV(path).truncate(4, 2, [2, 4, 6, 8], log=logs.append)
    rows = read_rows(path)
    assert [(r["seed"], r["update"]) for r in rows] == [
        ("0", "2"),
        ("1", "2"),
        ("0", "4"),
        ("1", "4"),
    ]
    assert path.read_text().splitlines() == lines[:5] and not logs
    path.write_text("\r\n".join(lines[:3]))  # rows of update 4 lost
    MetricsCSV(path).truncate(4, 2, [2, 4, 6, 8], log=logs.append)
    assert len(logs) == 1 and "lacks 2 row(s)" in logs[0]
