"""The configuration table beside the learning curves: rows, sorting, HTML (pure)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from gpdl_backend.mop.progress import ConfigProgress, JobProgress, describe_hyperparameters

from .theme import config_colour, swatch

LEADING = (("mst_key", "mst"),)
TRAILING = (("status", "status"), ("iteration", "iteration"),
            ("training_loss", "train loss"), ("training_metric", "train metric"),
            ("validation_loss", "val loss"), ("validation_metric", "val metric"))
SEARCH_COLUMNS = [("rung", "rung"), ("budget", "budget")]
HIDDEN_HYPERPARAMETERS = ("loss", "metrics", "compile_params", "fit_params")
SHORT_NAMES = {"model_id": "model", "learning_rate": "lr", "batch_size": "batch"}


def config_phrases(config: ConfigProgress, names: Mapping[int, str] | None = None) -> list[str]:
    """Short phrases for a configuration, its model's name first (``cnn-8``, ``Adam lr=0.001``).

    Args:
        names: ``model_id → name`` (``model_names``); a model without one
            is ``model 3``. Defaults to none.
    """
    values = dict(config.hyperparameters)
    model_id = values.pop("model_id", config.model_id)
    phrases = describe_hyperparameters(values)
    if model_id is None:
        return phrases
    return [(names or {}).get(model_id) or f"model {model_id}", *phrases]


def config_label(config: ConfigProgress, names: Mapping[int, str] | None = None) -> str:
    """``mst 3 · cnn-8 · Adam lr=0.001 · batch 64`` (a dropdown's or header's text)."""
    return " · ".join([f"mst {config.mst_key}", *config_phrases(config, names)])


def shared_hyperparameters(progress: JobProgress) -> dict[str, Any]:
    """Hyperparameters every configuration has with one value (said once, not in a column)."""
    if len(progress.configs) < 2:
        return {}
    first, *others = (c.hyperparameters for c in progress.configs)
    return {k: v for k, v in first.items() if k not in HIDDEN_HYPERPARAMETERS
            and k != "model_id" and all(k in o and o[k] == v for o in others)}


def columns_of(progress: JobProgress) -> list[tuple[str, str]]:
    """``(key, title)`` of every column: mst, hyperparameters that vary, status, last metrics.

    Hyperparameters shared by every configuration get no column (the table
    stays narrow); ``shared_hyperparameters`` gives them.
    """
    shared = shared_hyperparameters(progress)
    keys: list[str] = []
    for config in progress.configs:
        for key in config.hyperparameters:
            if key not in keys and key not in HIDDEN_HYPERPARAMETERS and key not in shared:
                keys.append(key)
    middle = [(key, SHORT_NAMES.get(key, key.replace("_", " "))) for key in keys]
    if any(config.budget is not None for config in progress.configs):
        middle += SEARCH_COLUMNS  # a search: where each configuration stands
    trailing = [c for c in TRAILING if progress.has_validation or "validation" not in c[0]]
    return [*LEADING, *middle, *trailing]


def config_rows(progress: JobProgress,
                names: Mapping[int, str] | None = None) -> list[dict[str, Any]]:
    """One row per configuration: hyperparameters, status, iteration, last evaluated values.

    Args:
        names: ``model_id → name``; the model column shows the name. Defaults to none.
    """
    rows = []
    for config in progress.configs:
        row: dict[str, Any] = {"mst_key": config.mst_key}
        row.update((k, v) for k, v in config.hyperparameters.items()
                   if k not in HIDDEN_HYPERPARAMETERS)
        if row.get("model_id") in (names or {}):
            row["model_id"] = (names or {})[row["model_id"]]
        row["status"] = "stopping" if config.stop_requested else config.status
        row["rung"], row["budget"] = config.rung, config.budget
        row["iteration"] = round(config.iteration, 2)
        for side in ("training", "validation"):
            for measure in ("loss", "metric"):
                row[f"{side}_{measure}"] = config.last(side, measure)
        rows.append(row)
    return rows


def sort_rows(rows: Sequence[dict[str, Any]], key: str,
              descending: bool = False) -> list[dict[str, Any]]:
    """Rows sorted by ``key``; missing values last in either direction, ties by mst_key.

    Numbers sort as numbers and text as text (numbers first when a column mixes them).

    Example:
        >>> sort_rows([{"mst_key": 1, "lr": 0.1}, {"mst_key": 2, "lr": None}], "lr", True)
        [{'mst_key': 1, 'lr': 0.1}, {'mst_key': 2, 'lr': None}]
    """
    present = [r for r in rows if _present(r.get(key))]
    missing = [r for r in rows if not _present(r.get(key))]
    present.sort(key=lambda r: r.get("mst_key", 0))
    present.sort(key=lambda r: _sort_key(r[key]), reverse=descending)
    missing.sort(key=lambda r: r.get("mst_key", 0))
    return present + missing


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]],
                 best: int | None = None, sorted_by: str | None = None,
                 descending: bool = False) -> str:
    """The rows as an HTML table; the best configuration's row in bold with a star."""
    arrow = " ▼" if descending else " ▲"
    head = "".join(f"<th>{html.escape(title)}{arrow if key == sorted_by else ''}</th>"
                   for key, title in columns)
    body = []
    for row in rows:
        mst = row.get("mst_key")
        cells = []
        for key, _ in columns:
            text = html.escape(_format(row.get(key)))
            if key == "mst_key":
                star = " ★" if mst == best else ""
                text = f"{swatch(config_colour(mst))}{text}{star}"
            cells.append(f"<td>{text}</td>")
        style = ' style="font-weight:bold"' if mst == best else ""
        body.append(f'<tr data-mst="{mst}"{style}>{"".join(cells)}</tr>')
    return (f'<table class="gpdl-table"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value).lower())


def _format(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
