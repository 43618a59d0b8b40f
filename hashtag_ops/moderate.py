"""Moderation (issue 11): hide a tag, mark it sensitive, clear both, or show its flags.

    python -m hashtag_ops.moderate hide <tag> --reason TEXT [--by NAME]
    python -m hashtag_ops.moderate sensitive <tag> --reason TEXT [--by NAME]
    python -m hashtag_ops.moderate clear <tag> --reason TEXT [--by NAME]
    python -m hashtag_ops.moderate show <tag>
    python -m hashtag_ops.moderate approve <tag> --reason TEXT [--by NAME]   (may trend)
    python -m hashtag_ops.moderate reject <tag> --reason TEXT [--by NAME]    (never trends)
    python -m hashtag_ops.moderate pending [--rank N]   (trend candidates not reviewed, best first)

The tag is given as written (``Love``, ``#love``) and normalised to its key
(hashtags.normalize_tag); a name no hashtag can have is refused with exit code 2 before anything is
read. A change writes a new ``meta:flags`` cell (hashtags.layout: hidden, sensitive, reason, by,
changed_at) in the tag's row through hashtag_store: ``hide`` and ``sensitive`` each set one flag and
keep the other, ``clear`` removes both; the reason and author are those of the latest change. Every
change needs a reason and is logged as one ``moderation`` event (hashtag_ops.logs, on stderr) with
the action, the tag and the flags before and after; stdout gets a one-line confirmation.

Effect: a hidden tag's page and API answer 404 on the next uncached read, and the next nightly run
leaves it out of every related list (it reads BigtableStore.hidden_tags(), an index row kept by write_flags, at launch); a sensitive
tag's tiles stay covered until the visitor reveals them. The table comes from the usual settings
(HASHTAGS_PROJECT / HASHTAGS_BIGTABLE_INSTANCE / HASHTAGS_TABLE; BIGTABLE_EMULATOR_HOST locally).
Exit codes: 0 done, 1 the store did not answer, 2 bad usage (unknown action, invalid tag, no reason).
"""
from __future__ import annotations

import argparse
import datetime as dt
import getpass
import logging
import os
import sys

from hashtag_ops import logs
from hashtag_store import BigtableStore, StoreUnavailable
from hashtags import is_valid_key, normalize_tag, trends
from hashtags.layout import Flags, rfc3339
from hashtags.settings import Settings

log = logging.getLogger("hashtags.moderation")

HIDE, SENSITIVE, CLEAR, SHOW = "hide", "sensitive", "clear", "show"
APPROVE, REJECT, PENDING = "approve", "reject", "pending"
CHANGES = (HIDE, SENSITIVE, CLEAR, APPROVE, REJECT)


def tag_key(name: str) -> str | None:
    """The row key for a tag as an operator types it (one leading ``#`` allowed), or None."""
    raw = name[1:] if name.startswith(("#", "\uff03")) else name
    key = normalize_tag(raw) if raw else ""
    return key if is_valid_key(key) else None


def changed(action: str, current: Flags, *, reason: str, by: str, now: dt.datetime) -> Flags:
    """The flags after ``action`` on ``current`` (pure)."""
    trend = current.trend
    if action in (APPROVE, REJECT):
        return Flags(hidden=current.hidden, sensitive=current.sensitive, reason=reason, by=by, changed_at=now,
                     trend=trends.ALLOWED if action == APPROVE else trends.REJECTED)
    if action == HIDE:
        hidden, sensitive = True, current.sensitive
    elif action == SENSITIVE:
        hidden, sensitive = current.hidden, True
    elif action == CLEAR:
        hidden, sensitive = False, False
    else:
        raise ValueError(f"not a change: {action!r}")
    return Flags(hidden=hidden, sensitive=sensitive, reason=reason, by=by, changed_at=now, trend=trend)


def describe(key: str, flags: Flags) -> str:
    """One line: the tag's state as ``show`` prints it."""
    if flags.changed_at is None and not (flags.hidden or flags.sensitive) and flags.trend == trends.PENDING:
        return f"#{key}: no moderation flags"
    state = ", ".join(n for n, on in (("hidden", flags.hidden), ("sensitive", flags.sensitive)) if on) or "clear"
    if flags.trend != trends.PENDING:
        state += f", trend {flags.trend}"
    when = rfc3339(flags.changed_at) if flags.changed_at else "?"
    return f"#{key}: {state} (by {flags.by or '?'} at {when}: {flags.reason!r})"


def moderate(store: BigtableStore, action: str, key: str, *, reason: str, by: str,
             now: dt.datetime | None = None) -> tuple[Flags, Flags]:
    """Apply one change to ``key`` and log it; returns (before, after)."""
    before = store.read_flags(key)
    after = store.write_flags(key, changed(action, before, reason=reason, by=by,
                                           now=now or dt.datetime.now(dt.timezone.utc)))
    logs.log_event(log, logs.MODERATION, f"moderation {action} #{key}: {reason}", action=action, tag=key,
                   hidden=after.hidden, sensitive=after.sensitive, reason=reason, by=by,
                   changed_at=rfc3339(after.changed_at), was_hidden=before.hidden, was_sensitive=before.sensitive,
                   trend=after.trend, was_trend=before.trend)
    return before, after


def pending(store: BigtableStore, rank: int) -> list[tuple[int, trends.TrendEntry]]:
    """(rank, entry) of the current trends row's candidates up to ``rank`` that no one reviewed."""
    listed = store.read_trends().entries
    return [(i, e) for i, e in enumerate(listed[:rank], 1) if e.review == trends.PENDING]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hashtag_ops.moderate", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=(*CHANGES, SHOW, PENDING))
    p.add_argument("tag", nargs="?", default=None, help="the tag as written (Love, #love): normalised to its key")
    p.add_argument("--rank", type=int, default=trends.LIST_MAX, help="pending: candidates up to this rank")
    p.add_argument("--reason", default="", help="why (required for hide, sensitive, clear; logged and kept in the row)")
    p.add_argument("--by", default=None, help="who decided (default: the login name)")
    args = p.parse_args(argv)
    if args.action == PENDING:
        return args
    if args.tag is None:
        p.error(f"{args.action} needs a tag")
    args.key = tag_key(args.tag)
    if args.key is None:
        p.error(f"{args.tag!r} is not a valid hashtag")
    args.reason = args.reason.strip()
    if args.action in CHANGES and not args.reason:
        p.error(f"{args.action} needs --reason TEXT (every change is logged with its reason)")
    if args.by is None:
        args.by = _login()
    return args


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup("moderate", stream=sys.stderr)  # stdout is the confirmation
    settings = Settings.from_env(os.environ)
    # the default app profile (HASHTAGS_APP_PROFILE is the web tier's read-only one)
    store = BigtableStore(settings.project, settings.bigtable_instance, settings.table, read_timeout=10.0)
    try:
        if args.action == PENDING:
            rows = pending(store, args.rank)
            for rank, e in rows:
                print(f"{rank}\t#{e.tag}\tscore {e.score:.1f}\t{e.accounts} accounts\t{e.uses} posts")
            if not rows:
                print(f"no pending trend candidates in the top {args.rank}")
            return 0
        if args.action == SHOW:
            print(describe(args.key, store.read_flags(args.key)))
            return 0
        _before, after = moderate(store, args.action, args.key, reason=args.reason, by=args.by)
        print(f"{args.action}: {describe(args.key, after)}")
        return 0
    except StoreUnavailable as e:
        print(f"error: the table did not answer ({e}); nothing changed", file=sys.stderr)
        return 1
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
