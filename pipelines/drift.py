"""The drift report of the nightly recount: what each row showed before vs. the exact count. Pure.

For one ``as_of`` (a UTC midnight) and one tag:

* ``before`` — the total the page showed when the recount started (the row's latest ``counts:base``
  + its ``counts:h`` cells at/after that base's as_of: ``BigtableStore.scan_totals``' rule);
* ``after``  — the exact total for the same moment: the recounted base at ``as_of`` + the row's
  ``counts:h`` cells at/after ``as_of`` (so both sides cover the same hour cells: like with like);
* ``diff``   — ``before - after`` (> 0: the page over-counted, e.g. a duplicated delivery; < 0: it
  under-counted, e.g. an event dropped as too late by the streaming job).

A row whose latest base is NEWER than this ``as_of`` (a backfill of an older night) is
``superseded``: the recount writes an older base version that no read uses, so for that row
``after == before`` and it is counted apart.

The summary is built by :class:`DriftAccumulator` (associative: the recount job merges partial
accumulators in a Beam ``CombineFn``), rendered as JSON and Markdown, and checked against a
threshold on the drift ratio = Σ|diff| / max(Σ after, 1).
"""
from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

DEFAULT_LIST_LIMIT = 1000  # drifted tags listed in the JSON (worst first)
DEFAULT_WORST_N = 20  # rows of the Markdown table


@dataclass(frozen=True)
class TagDrift:
    key: str
    before: int
    after: int
    superseded: bool = False

    @property
    def diff(self) -> int:
        return self.before - self.after


@dataclass
class DriftAccumulator:
    """Running totals + the ``list_limit`` worst tags (largest |diff|, ties by key)."""

    list_limit: int = DEFAULT_LIST_LIMIT
    tags: int = 0
    drifted: int = 0
    superseded: int = 0
    before_total: int = 0
    after_total: int = 0
    abs_diff_total: int = 0
    over_counted: int = 0  # tags with diff > 0
    under_counted: int = 0  # tags with diff < 0
    # min-heap of (|diff|, negated-key sort helper, key, before, after); the smallest is evicted
    _worst: list = field(default_factory=list)

    def add(self, t: TagDrift) -> "DriftAccumulator":
        self.tags += 1
        self.before_total += t.before
        self.after_total += t.after
        if t.superseded:
            self.superseded += 1
        d = t.diff
        if d == 0:
            return self
        self.drifted += 1
        self.abs_diff_total += abs(d)
        if d > 0:
            self.over_counted += 1
        else:
            self.under_counted += 1
        self._push((abs(d), _KeyDesc(t.key), t.key, t.before, t.after))
        return self

    def _push(self, entry) -> None:
        if self.list_limit <= 0:
            return
        if len(self._worst) < self.list_limit:
            heapq.heappush(self._worst, entry)
        elif entry[:2] > self._worst[0][:2]:
            heapq.heapreplace(self._worst, entry)

    def merge(self, other: "DriftAccumulator") -> "DriftAccumulator":
        for name in ("tags", "drifted", "superseded", "before_total", "after_total", "abs_diff_total",
                     "over_counted", "under_counted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for entry in other._worst:
            self._push(entry)
        return self

    def worst(self) -> list[TagDrift]:
        """Drifted tags, worst first (|diff| descending, then key ascending)."""
        ordered = sorted(self._worst, key=lambda e: (-e[0], e[2]))
        return [TagDrift(k, b, a) for _, _, k, b, a in ordered]

    # --- plain-data form (the job writes it as one JSON line; the driver reads it back) ------
    def to_json(self) -> dict[str, Any]:
        return {
            "list_limit": self.list_limit, "tags": self.tags, "drifted": self.drifted,
            "superseded": self.superseded, "before_total": self.before_total,
            "after_total": self.after_total, "abs_diff_total": self.abs_diff_total,
            "over_counted": self.over_counted, "under_counted": self.under_counted,
            "worst": [[t.key, t.before, t.after] for t in self.worst()],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "DriftAccumulator":
        acc = cls(list_limit=int(obj.get("list_limit", DEFAULT_LIST_LIMIT)))
        for name in ("tags", "drifted", "superseded", "before_total", "after_total", "abs_diff_total",
                     "over_counted", "under_counted"):
            setattr(acc, name, int(obj.get(name, 0)))
        for key, before, after in obj.get("worst", []):
            acc._push((abs(before - after), _KeyDesc(key), key, before, after))
        return acc


class _KeyDesc:
    """Orders keys DESCENDING, so that among equal |diff| the min-heap evicts the largest key first
    (the kept list is then 'worst, ties by key ascending', whatever the merge order)."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def __lt__(self, other: "_KeyDesc") -> bool:
        return self.key > other.key

    def __gt__(self, other: "_KeyDesc") -> bool:
        return self.key < other.key

    def __eq__(self, other) -> bool:
        return isinstance(other, _KeyDesc) and self.key == other.key

    def __le__(self, other):
        return self == other or self < other

    def __ge__(self, other):
        return self == other or self > other


def summarize(rows: Iterable[TagDrift], list_limit: int = DEFAULT_LIST_LIMIT) -> DriftAccumulator:
    acc = DriftAccumulator(list_limit=list_limit)
    for r in rows:
        acc.add(r)
    return acc


def drift_ratio(acc: DriftAccumulator) -> float:
    return acc.abs_diff_total / max(acc.after_total, 1)


def build_report(acc: DriftAccumulator, *, as_of: str, table: str, dry_run: bool,
                 threshold: float | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report document (the JSON artifact). ``as_of`` is the RFC 3339 midnight."""
    ratio = drift_ratio(acc)
    return {
        "as_of": as_of,
        "table": table,
        "dry_run": dry_run,
        "tags": acc.tags,
        "tags_drifted": acc.drifted,
        "fraction_drifted": acc.drifted / acc.tags if acc.tags else 0.0,
        "tags_over_counted": acc.over_counted,
        "tags_under_counted": acc.under_counted,
        "tags_superseded": acc.superseded,
        "total_before": acc.before_total,
        "total_after": acc.after_total,
        "total_diff": acc.before_total - acc.after_total,
        "abs_diff_total": acc.abs_diff_total,
        "drift_ratio": ratio,
        "threshold": threshold,
        "exceeds_threshold": exceeds(ratio, threshold),
        "listed": acc.list_limit,
        "drifted_tags": [{"tag": t.key, "before": t.before, "after": t.after, "diff": t.diff}
                         for t in acc.worst()],
        **dict(extra or {}),
    }


def exceeds(ratio: float, threshold: float | None) -> bool:
    return threshold is not None and not math.isnan(threshold) and ratio > threshold


def summary_line(report: Mapping[str, Any]) -> str:
    worst = report["drifted_tags"][:3]
    worst_s = ", ".join(f"{t['tag']} {t['diff']:+d}" for t in worst) or "none"
    verdict = ""
    if report.get("threshold") is not None:
        verdict = (" OVER THRESHOLD " if report["exceeds_threshold"] else " within threshold ") + \
                  f"{report['threshold']:.4%}"
    return (f"drift as_of={report['as_of']} tags={report['tags']} drifted={report['tags_drifted']} "
            f"({report['fraction_drifted']:.2%}) total {report['total_before']} -> {report['total_after']} "
            f"(|diff| {report['abs_diff_total']}, ratio {report['drift_ratio']:.4%}){verdict}; "
            f"worst: {worst_s}" + (" [dry run: nothing written]" if report.get("dry_run") else ""))


def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", " ")


def render_markdown(report: Mapping[str, Any], worst_n: int = DEFAULT_WORST_N) -> str:
    lines = [
        f"# Hashtag recount drift report — as of {report['as_of']}",
        "",
        f"Table `{report['table']}`" + (" — **dry run, nothing written**" if report.get("dry_run") else ""),
        "",
        "| measure | value |",
        "|---|---|",
        f"| tags compared | {report['tags']} |",
        f"| tags drifted | {report['tags_drifted']} ({report['fraction_drifted']:.2%}) |",
        f"| over-counted / under-counted | {report['tags_over_counted']} / {report['tags_under_counted']} |",
        f"| total before (what the pages showed) | {report['total_before']} |",
        f"| total after (exact) | {report['total_after']} |",
        f"| Σ before − after | {report['total_diff']:+d} |",
        f"| Σ abs(diff) | {report['abs_diff_total']} |",
        f"| drift ratio Σ abs(diff) / Σ after | {report['drift_ratio']:.4%} |",
    ]
    if report.get("threshold") is not None:
        verdict = "**EXCEEDED**" if report["exceeds_threshold"] else "ok"
        lines.append(f"| threshold | {report['threshold']:.4%} ({verdict}) |")
    if report.get("tags_superseded"):
        lines.append(f"| rows with a newer base (unchanged) | {report['tags_superseded']} |")
    for key in ("archive_files", "events_read", "events_rejected"):
        if key in report:
            lines.append(f"| {key.replace('_', ' ')} | {report[key]} |")
    lines += ["", f"## Worst {min(worst_n, len(report['drifted_tags']))} tags", ""]
    if not report["drifted_tags"]:
        lines.append("No tag drifted.")
    else:
        lines += ["| tag | before | after | diff |", "|---|---:|---:|---:|"]
        for t in report["drifted_tags"][:worst_n]:
            lines.append(f"| {_md_escape(t['tag'])} | {t['before']} | {t['after']} | {t['diff']:+d} |")
    return "\n".join(lines) + "\n"


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False) + "\n"
