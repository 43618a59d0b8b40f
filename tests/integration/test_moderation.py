"""``python -m hashtag_ops.moderate`` against the Bigtable emulator: the flags land in the tag's row,
the page read and hidden_tags() see them, every change is logged as a ``moderation`` event."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hashtag_ops import moderate
from hashtags.layout import Flags
from tests.conftest import INSTANCE, PROJECT

pytestmark = pytest.mark.emulator
UTC = dt.timezone.utc
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(store, table_name, monkeypatch):
    """The command's settings point at the fixture's table; JSON logs (on stderr) to read back."""
    for name, value in {"HASHTAGS_PROJECT": PROJECT, "HASHTAGS_BIGTABLE_INSTANCE": INSTANCE,
                        "HASHTAGS_TABLE": table_name, "HASHTAGS_LOG_FORMAT": "json"}.items():
        monkeypatch.setenv(name, value)
    store.write_hour_counts([("love", dt.datetime(2026, 11, 30, 10, tzinfo=UTC), 5, "Love")])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield store
    root.handlers[:] = handlers  # moderate.main replaced the root handler (logs.setup)
    root.setLevel(level)


def run(capsys, *argv):
    code = moderate.main(list(argv))
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return code, out, [e for e in events if e.get("event") == "moderation"]


def test_hide_hides_the_page_and_lists_the_tag(env, capsys):
    code, out, events = run(capsys, "hide", "#LOVE", "--reason", "spam wave", "--by", "alice")
    assert code == 0
    assert out.startswith("hide: #love: hidden (by alice at ") and out.rstrip().endswith(": 'spam wave')")
    doc = env.read_page("love")
    assert doc.flags.hidden and not doc.flags.sensitive
    assert (doc.flags.reason, doc.flags.by) == ("spam wave", "alice")
    assert doc.total_posts == 5  # the counts are untouched
    assert env.hidden_tags() == frozenset({"love"})
    [event] = events
    assert {k: event[k] for k in ("action", "tag", "hidden", "sensitive", "reason", "by", "was_hidden")} == {
        "action": "hide", "tag": "love", "hidden": True, "sensitive": False, "reason": "spam wave",
        "by": "alice", "was_hidden": False}
    assert event["severity"] == "INFO"
    assert event["changed_at"] == doc.flags.changed_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_clear_removes_both_flags(env, capsys):
    run(capsys, "hide", "love", "--reason", "spam", "--by", "alice")
    run(capsys, "sensitive", "love", "--reason", "adult", "--by", "bob")
    assert env.read_page("love").flags == Flags(True, True, "adult", "bob", env.read_flags("love").changed_at)
    code, out, [event] = run(capsys, "clear", "love", "--reason", "reviewed", "--by", "carol")
    assert code == 0 and out.startswith("clear: #love: clear (by carol")
    flags = env.read_page("love").flags
    assert (flags.hidden, flags.sensitive, flags.reason, flags.by) == (False, False, "reviewed", "carol")
    assert env.hidden_tags() == frozenset()
    assert (event["was_hidden"], event["was_sensitive"], event["hidden"], event["sensitive"]) == (True, True, False, False)


def test_sensitive_keeps_the_page_visible(env, capsys):
    code, out, [event] = run(capsys, "sensitive", "Love", "--reason", "adult content", "--by", "bob")
    assert code == 0 and out.startswith("sensitive: #love: sensitive (by bob")
    doc = env.read_page("love")
    assert doc.flags.sensitive and not doc.flags.hidden
    assert env.hidden_tags() == frozenset()
    assert event["action"] == "sensitive" and event["sensitive"] is True


def test_show_prints_the_state_and_changes_nothing(env, capsys):
    code, out, events = run(capsys, "show", "love")
    assert (code, out, events) == (0, "#love: no moderation flags\n", [])
    run(capsys, "hide", "love", "--reason", "spam", "--by", "alice")
    changed_at = env.read_flags("love").changed_at
    code, out, events = run(capsys, "show", "#Love")
    stamp = changed_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert (code, out, events) == (0, f"#love: hidden (by alice at {stamp}: 'spam')\n", [])
    assert env.read_flags("love").changed_at == changed_at


def test_hiding_an_unused_tag_makes_no_page(env, capsys):
    run(capsys, "hide", "nobodyyet", "--reason", "pre-emptive", "--by", "alice")
    assert env.hidden_tags() == frozenset({"nobodyyet"})
    run(capsys, "clear", "nobodyyet", "--reason", "lifted", "--by", "alice")
    assert env.read_page("nobodyyet") is None  # a flags-only row stays a 404, not a page of 0 posts


@pytest.mark.parametrize("argv, message", [
    (["hide", "no spaces", "--reason", "x"], "is not a valid hashtag"),
    (["hide", "123", "--reason", "x"], "is not a valid hashtag"),  # a tag needs a letter
    (["hide", "#", "--reason", "x"], "is not a valid hashtag"),
    (["hide", "love", "--reason", "  "], "needs --reason"),
    (["clear", "love"], "needs --reason"),
    (["delete", "love", "--reason", "x"], "invalid choice"),
])
def test_bad_usage_exits_2_and_writes_nothing(env, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        moderate.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert env.read_flags("love") == Flags()


def test_the_module_runs_as_a_command(env, table_name):
    """``python -m hashtag_ops.moderate`` itself: a bad tag exits 2 with a message; a hide lands."""
    cmd = [sys.executable, "-m", "hashtag_ops.moderate"]
    bad = subprocess.run([*cmd, "hide", "not a tag", "--reason", "x"], cwd=REPO, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "'not a tag' is not a valid hashtag" in bad.stderr
    ok = subprocess.run([*cmd, "hide", "Love", "--reason", "spam"], cwd=REPO, env=os.environ.copy(),
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("hide: #love: hidden (by ")
    assert env.read_flags("love").hidden
