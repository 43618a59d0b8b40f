"""What a reconciliation run covers (DESIGN.md "Reconciliation (incremental) and the DAG"). Pure: no I/O.

The ONE planning module: the DAG (dags/hashtag_recount.py), the backfill CLI (pipelines/backfill.py)
and the job (pipelines/recount_launch.py) all plan with it, ``parse_day`` is the one date parser and
:class:`JobConfig` the one typed request to the job (and its one wire form).

A run is for ``as_of`` = M, a UTC midnight given as its date. It reads the archive partitions of a
range of ARRIVAL days (``arrived=YYYY-MM-DD``, hashtags/archive.py) and applies, per post, the latest
event with event time before M.

* ``nightly``: the days that arrived since the previous successful run, plus one day of overlap
  (the previous run's last arrival day): ``[last_run.arrived_to, M - 1 day]``. Re-reading a day is harmless (the per-post state
  makes an already-applied event a no-op) and catches files that landed after the previous run read
  the day, and events near midnight that the previous run could not count yet. With no previous run,
  every day up to M - 1 (``arrived_from`` None = from the first day).
  ``last_run`` is the latest successful run BEFORE M (records are read "as of before M", so a rerun
  of a night plans exactly what its first attempt planned: that is what makes it idempotent).
* ``reapply``: an explicit range of arrival days (e.g. a partition restored or completed late),
  applied as of M. The base at M is rebuilt from the base before M, so a reapply at a midnight that
  a run already wrote must cover the days that run read; at a midnight no run has written yet it is
  safe for any range (days it leaves out are read by the next nightly, which starts from this run's
  ``arrived_to``).
* ``full_rebuild``: every arrival day up to M - 1, with empty prior state (the oracle, and the
  repair of last resort).

M is never after the run day's midnight: a base at a future midnight would hide today's hour cells.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from typing import Any, Mapping

NIGHTLY, REAPPLY, FULL_REBUILD = "nightly", "reapply", "full_rebuild"
MODES = (NIGHTLY, REAPPLY, FULL_REBUILD)
ONE_DAY = dt.timedelta(days=1)
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:$|[T ])")  # fromisoformat alone also takes 20261123


def parse_day(value: str | dt.date | dt.datetime) -> dt.date:
    """THE date parser: ``YYYY-MM-DD`` (or an ISO timestamp, or a date/datetime) → a UTC date.

    A timestamp is converted to UTC before its date is taken (``2026-11-23T01:00+05:00`` is
    2026-11-22); a naive one is taken as UTC. Anything else raises ValueError.
    """
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    text = value.strip()
    try:
        if not _ISO_DAY.match(text):
            raise ValueError(text)
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return parse_day(dt.datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}") from None


def optional_day(value: Any) -> dt.date | None:
    """``parse_day`` for optional inputs (DAG params, unset flags): None or "" → None."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else parse_day(value)


@dataclass(frozen=True, slots=True)
class LastRun:
    """A successful run's record: its midnight and the last arrival day it read."""
    as_of: dt.date
    arrived_to: dt.date


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One run: ``as_of`` (midnight, as a date) and the arrival days it reads, both ends inclusive;
    ``arrived_from`` None = from the first archived day."""
    mode: str
    as_of: dt.date
    arrived_from: dt.date | None
    arrived_to: dt.date | None
    dry_run: bool = False

    def arrival_days(self) -> list[dt.date] | None:
        """Every arrival day of the range, or None when it is open at the start."""
        if self.arrived_from is None or self.arrived_to is None:
            return None
        return [self.arrived_from + i * ONE_DAY for i in range((self.arrived_to - self.arrived_from).days + 1)]

    def describe(self) -> str:
        start = self.arrived_from.isoformat() if self.arrived_from else "the first day"
        end = self.arrived_to.isoformat() if self.arrived_to else "?"
        return (f"{self.mode}{' (dry run)' if self.dry_run else ''} as of {self.as_of.isoformat()} 00:00 UTC: "
                f"arrival days {start} .. {end}")


def plan_nightly(as_of: dt.date, last_run: LastRun | None, *, dry_run: bool = False) -> RunPlan:
    last_day = as_of - ONE_DAY
    if last_run is None:
        return RunPlan(NIGHTLY, as_of, None, last_day, dry_run)
    if last_run.as_of >= as_of:
        raise ValueError(f"the last run record ({last_run.as_of}) is not before as_of {as_of}: "
                         "pass the latest run BEFORE this midnight")
    return RunPlan(NIGHTLY, as_of, min(last_run.arrived_to, last_day), last_day, dry_run)


def plan_reapply(from_day: dt.date, to_day: dt.date, as_of: dt.date, *, dry_run: bool = False) -> RunPlan:
    if from_day > to_day:
        raise ValueError(f"first arrival day {from_day} is after the last {to_day}")
    if to_day >= as_of:
        raise ValueError(f"arrival day {to_day} is not before as_of {as_of}: a run at a midnight reads "
                         "only days that ended by then")
    return RunPlan(REAPPLY, as_of, from_day, to_day, dry_run)


def plan_full_rebuild(as_of: dt.date, *, dry_run: bool = False) -> RunPlan:
    return RunPlan(FULL_REBUILD, as_of, None, as_of - ONE_DAY, dry_run)


def plan_run(mode: str, *, run_day: dt.date, as_of: dt.date | None = None, from_day: dt.date | None = None,
             to_day: dt.date | None = None, dry_run: bool = False, last_run: LastRun | None = None) -> RunPlan:
    """The plan for a request (CLI flags or DAG params). ``run_day`` is today (UTC) for the CLI and
    the run's logical day for the DAG; ``as_of`` defaults to it. ``last_run`` only matters for a
    nightly: without it the plan reads every day, and the job (which reads the record) narrows it."""
    as_of = as_of or run_day
    if as_of > run_day:
        raise ValueError(f"as_of {as_of} is after {run_day}: its midnight has not come yet (UTC)")
    if mode != REAPPLY and (from_day or to_day):
        raise ValueError(f"--from/--to (arrival days) only go with reapply, not {mode}")
    if mode == NIGHTLY:
        return plan_nightly(as_of, last_run, dry_run=dry_run)
    if mode == FULL_REBUILD:
        return plan_full_rebuild(as_of, dry_run=dry_run)
    if mode == REAPPLY:
        if from_day is None and to_day is None:
            raise ValueError("reapply needs a first and/or last arrival day")
        return plan_reapply(from_day or to_day, to_day or from_day, as_of, dry_run=dry_run)
    raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")


def plan_from_params(params: Mapping[str, Any], run_day: dt.date) -> RunPlan:
    """The DAG's Params → a plan: ``full_rebuild`` true → full rebuild; ``from_date``/``to_date``
    (arrival days) → reapply; else nightly. ``as_of`` (optional) defaults to the run's day."""
    from_day, to_day = optional_day(params.get("from_date")), optional_day(params.get("to_date"))
    if params.get("full_rebuild"):
        mode = FULL_REBUILD
    elif from_day or to_day:
        mode = REAPPLY
    else:
        mode = NIGHTLY
    return plan_run(mode, run_day=run_day, as_of=optional_day(params.get("as_of")), from_day=from_day,
                    to_day=to_day, dry_run=bool(params.get("dry_run")))


def required_days(plan: RunPlan) -> list[dt.date]:
    """Arrival partitions that must hold files before the run starts: the last day for a nightly
    (the night's own arrivals; earlier days were checked by earlier nights), every day of a reapply,
    none for a full rebuild (it needs only some archive)."""
    if plan.mode == NIGHTLY:
        return [plan.as_of - ONE_DAY]
    if plan.mode == REAPPLY:
        return plan.arrival_days() or []
    return []


@dataclass(frozen=True, slots=True)
class JobConfig:
    """One recount run, typed: what the DAG and the backfill CLI build, and what the job's launcher
    (pipelines/recount_launch.py) runs. Its wire form — the Flex Template's parameters
    (docker/dataflow/recount-metadata.json) and the entry file's ``--name=value`` flags — is written
    by ``to_parameters`` and read by ``from_parameters``, nowhere else.

    ``plan`` is the REQUESTED plan: a nightly without an arrival range (``arrived_from`` None) is
    narrowed by the job to the days since its last run record (``plan_nightly``), so a retry reads
    the same record and plans the same range; a reapply or full rebuild runs as given (then
    ``hashtags.post_state.resolve`` adjusts any plan to the recorded runs)."""
    plan: RunPlan
    archive: str  # the archive root (local or gs://)
    report_path: str  # folder of drift-<as_of>.json/.md
    instance: str
    table: str  # the hashtags table
    post_state_table: str
    project: str | None = None  # the Bigtable project; None: the job's project
    app_profile: str | None = None  # writes and prior reads (production: the writers' single-cluster profile)
    drift_threshold: float | None = None  # exit 3 over this drift ratio
    worst_n: int | None = None  # tags in the Markdown report (None: the report's default)
    list_limit: int | None = None  # drifted tags in the JSON report (None: the report's default)
    allow_empty_archive: bool = False  # run even when the planned days hold no archive file

    def to_parameters(self) -> dict[str, str]:
        """The wire form: parameter name → text (unset ones left out, a true flag is "true")."""
        p = self.plan
        out = {"mode": p.mode, "as_of": p.as_of.isoformat()}
        if p.arrived_from is not None and p.arrived_to is not None:
            out.update(arrived_from=p.arrived_from.isoformat(), arrived_to=p.arrived_to.isoformat())
        out.update(archive_path=self.archive, report_path=self.report_path, bigtable_instance=self.instance,
                   bigtable_table=self.table, post_state_table=self.post_state_table)
        for name, value in (("bigtable_project", self.project), ("app_profile", self.app_profile),
                            ("drift_threshold", self.drift_threshold), ("worst_n", self.worst_n),
                            ("list_limit", self.list_limit)):
            if value is not None and value != "":
                out[name] = str(value)
        for name, value in (("report_only", p.dry_run), ("allow_empty_archive", self.allow_empty_archive)):
            if value:
                out[name] = "true"
        return out

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any], *, today: dt.date) -> "JobConfig":
        """The wire form back (values as text, or already typed); ``as_of`` defaults to ``today``.
        Raises ValueError on a missing or bad value."""
        def text(name: str) -> str | None:
            v = params.get(name)
            return None if v is None or (isinstance(v, str) and not v.strip()) else str(v).strip()

        def required(name: str) -> str:
            v = text(name)
            if v is None:
                raise ValueError(f"{name} is required")
            return v

        def number(name: str, kind):
            v = text(name)
            try:
                return None if v is None or v.lower() in ("none", "null") else kind(v)
            except ValueError:
                raise ValueError(f"{name}: not a number: {v!r}") from None

        mode = text("mode") or NIGHTLY
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        as_of = parse_day(text("as_of")) if text("as_of") else today
        first, last = optional_day(params.get("arrived_from")), optional_day(params.get("arrived_to"))
        dry = flag(params.get("report_only"), "report_only")
        if mode == FULL_REBUILD:
            if first or last:
                raise ValueError("arrived_from/arrived_to do not go with full_rebuild (it reads every day)")
            plan = plan_full_rebuild(as_of, dry_run=dry)
        elif mode == REAPPLY or first or last:
            if not (first and last):
                raise ValueError("give both arrived_from and arrived_to")
            plan = replace(plan_reapply(first, last, as_of, dry_run=dry), mode=mode)  # a nightly's explicit range stays a nightly
        else:
            plan = plan_nightly(as_of, None, dry_run=dry)
        return cls(plan, required("archive_path"), text("report_path") or "artifacts/drift",
                   required("bigtable_instance"), required("bigtable_table"), required("post_state_table"),
                   project=text("bigtable_project"), app_profile=text("app_profile"),
                   drift_threshold=number("drift_threshold", float), worst_n=number("worst_n", int),
                   list_limit=number("list_limit", int),
                   allow_empty_archive=flag(params.get("allow_empty_archive"), "allow_empty_archive"))


def flag(value: Any, name: str = "flag") -> bool:
    """A boolean parameter: True/False, or "true"/"false" (and 1/0, yes/no); unset is False."""
    if value is None or isinstance(value, bool):
        return bool(value)
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "y", "on"):
        return True
    if v in ("", "0", "false", "no", "n", "off", "none"):
        return False
    raise ValueError(f"{name}: not a boolean: {value!r}")


JOB_NAME_PREFIX = "hashtag-recount"


def night_job_prefix(as_of: dt.date) -> str:
    """The Dataflow job-name prefix of every run that writes the base at ``as_of`` (one writer per
    night: a launcher refuses to start while a job with this prefix but another name is active)."""
    return f"{JOB_NAME_PREFIX}-{as_of:%Y%m%d}"


def job_name(plan: RunPlan) -> str:
    """Deterministic Dataflow job name of a plan (``[a-z]([-a-z0-9]*[a-z0-9])?``): a retry of the
    same run has the same name, and Dataflow refuses a second ACTIVE job of one name."""
    name = f"{night_job_prefix(plan.as_of)}-{plan.mode.replace('_', '-')}"
    if plan.mode == REAPPLY:
        name += f"-{plan.arrived_from:%Y%m%d}-{plan.arrived_to:%Y%m%d}"
    return name + ("-dry" if plan.dry_run else "")
