"""Metrics of a training run: one JSON line per record, and a plot of the curves."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = ["MetricsLog", "read_metrics", "plot_metrics"]


class MetricsLog:
    """Append-only JSONL log; each record holds ``kind`` (``train``/``val``), ``step`` and numbers.

    On resume, records past ``resume_step`` are dropped so the log matches the restored state.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
            with atomic_write(self.path, "w") as handle:
                handle.write("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, kind: str, step: int, **values: Any) -> None:
        """Append one record."""
        record = {"kind": kind, "step": step, **{k: _plain(v) for k, v in values.items()}}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics log; a last line cut short (a kill or a full disk while it was written) is left
    out, any other line that is not a record raises :class:`~ismtk.errors.InputError` naming it."""
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise InputError(f"{path}: line {number} is not a JSON record; remove it to continue") from None
    return records


#: Record fields that say where a record sits, not how training goes: never plotted.
POSITION_KEYS = ("kind", "step", "epoch", "stage")


def plot_metrics(path: str | Path, out_png: str | Path) -> list[str]:
    """Plot every numeric metric against the step, one panel per metric, train and val overlaid; the PNG is
    written atomically. Returns the plotted metric names (none: no PNG written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for record in read_metrics(path):
        for key, value in record.items():
            if key not in POSITION_KEYS and isinstance(value, (int, float)) and math.isfinite(value):
                series[key][record["kind"]].append((record["step"], value))
    if not series:
        return []
    cols = min(3, len(series))
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, (key, by_kind) in zip(axes.flat, sorted(series.items()), strict=False):  # more axes than series
        for kind, points in sorted(by_kind.items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o" if kind != "train" else None, markersize=3, label=kind)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_write(out_png, "wb") as out:  # makes the folder too
        fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return sorted(series)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
