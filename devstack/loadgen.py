"""Load generator: realistic synthetic post events and top-posts lists, published to Pub/Sub.

    python -m devstack.loadgen --count 5000 --rate 300 --expected-out .run/expected.json
    python -m devstack.loadgen --count 2000 --malformed 0.02 --deletes 0.05 --duplicates 0.03 --print-expected 20
    python -m devstack.loadgen --count 0 --burst eclipse:40      # 40 distinct accounts post #eclipse: it trends
    python -m devstack.loadgen --count 0 --flood spam:300         # one account posts #spam 300 times: it does not

Tags are Zipf-distributed over a mixed-script vocabulary (Latin with case/width variants, Cyrillic,
Greek, Arabic, Hebrew, Devanagari, CJK, Hangul), 1–10 per caption, some repeated within a caption.
The generator knows which tags it put in each caption, so it states the EXACT expected count per tag
(published − deleted, duplicates and malformed messages excluded) without calling the extractor.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from hashtags import normalize_tag, settings
from hashtags.settings import DEV_IMAGE_ORIGIN

_LATIN = ["love", "travel", "food", "photography", "nature", "art", "music", "sunset", "fitness", "cats",
          "dogs", "coffee", "beach", "summer", "winter", "design", "fashion", "friends", "family", "books",
          "football", "running", "yoga", "vegan", "pizza", "mountains", "streetart", "architecture",
          "mañana", "café", "münchen", "throwbackthursday", "tbt", "nofilter", "instagood", "2026goals"]
_OTHER = ["привет", "москва", "кофе", "Αθήνα", "θάλασσα", "السياحة", "القاهرة", "ירושלים", "שלום",
          "भारत", "दिल्ली", "東京", "ラーメン", "さくら", "日本語ハッシュタグ", "트위터", "서울", "北京",
          "برنامه_نویسی", "straße"]
_WORDS = ("the a my with at in on today sunny day walk best friends new look this is so good happy "
          "morning evening weekend trip view city life time favourite again never ever 😍 🌅 ☕ 🎉 очень "
          "красиво 今日は 最高 جميل שמח बहुत").split()


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def _variants(word: str) -> list[str]:
    vs = [word, word.capitalize(), word.upper()]
    if word.isascii():
        vs.append(_fullwidth(word))
    key = normalize_tag(word)
    return [v for v in dict.fromkeys(vs) if normalize_tag(v) == key]


@dataclass
class Vocabulary:
    keys: list[str]
    spellings: dict[str, list[str]]
    cum_weights: list[float]

    @classmethod
    def build(cls, size: int = 400, zipf_s: float = 1.1) -> "Vocabulary":
        words = _LATIN + _OTHER
        words += [f"tag{i}" for i in range(max(0, size - len(words)))]
        spellings: dict[str, list[str]] = {}
        for w in words[:size]:
            spellings.setdefault(normalize_tag(w), []).extend(_variants(w))
        keys = list(spellings)
        weights = [1.0 / (rank ** zipf_s) for rank in range(1, len(keys) + 1)]
        return cls(keys, spellings, list(itertools.accumulate(weights)))

    def sample(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.keys, cum_weights=self.cum_weights, k=k)


@dataclass
class Message:
    kind: str  # "published" | "deleted" | "duplicate" | "malformed"
    data: bytes
    attributes: dict[str, str]
    ordering_key: str = ""


@dataclass
class Expected:
    counts: Counter = field(default_factory=Counter)
    malformed: int = 0
    duplicates: int = 0
    published: int = 0
    deleted: int = 0
    posts_by_tag: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"counts": dict(self.counts), "malformed": self.malformed, "duplicates": self.duplicates,
                "published": self.published, "deleted": self.deleted}


_MALFORMED_KINDS = ("bad_json", "not_object", "missing_post_id", "http_image", "huge_caption",
                    "bad_time", "wrong_type", "bad_event")


def _malformed(rng: random.Random, base: dict) -> bytes:
    kind = rng.choice(_MALFORMED_KINDS)
    b = dict(base)
    if kind == "bad_json":
        return b'{"event": "published", "post_id": '
    if kind == "not_object":
        return b'["published"]'
    if kind == "missing_post_id":
        b.pop("post_id")
    elif kind == "http_image":
        b["image_url"] = "http://insecure.example/x.jpg"
    elif kind == "huge_caption":
        b["caption"] = "#big " + "x" * (settings.MAX_CAPTION_BYTES + 10)
    elif kind == "bad_time":
        b["event_time"] = "yesterday"
    elif kind == "wrong_type":
        b["post_id"] = 12345
    elif kind == "bad_event":
        b["event"] = "edited"
    return json.dumps(b).encode()


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def generate(count: int, *, seed: int = 1, deletes: float = 0.05, malformed: float = 0.02,
             duplicates: float = 0.0, vocabulary: Vocabulary | None = None,
             now: dt.datetime | None = None, spread_minutes: float = 20.0,
             history_days: int = 0, history_fraction: float = 0.0,
             expected: Expected | None = None) -> Iterator[Message]:
    """Yield ``count`` messages; ``expected`` (if given) is filled with the exact counts.

    Event times fall in the last ``spread_minutes``; with ``history_days``, a ``history_fraction``
    of them falls instead in the ``history_days`` whole UTC days before today's midnight. The
    streaming job archives those but does not count them (they are later than its allowed
    lateness): only a reconciliation counts them, into ``base`` and the day cells (history)."""
    rng = random.Random(seed)
    vocab = vocabulary or Vocabulary.build()
    exp = expected if expected is not None else Expected()
    now = now or dt.datetime.now(dt.timezone.utc)
    live: list[tuple[str, str, str, list[str], dt.datetime]] = []  # post_id, user, caption, keys, time
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    last: Message | None = None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(count):
        if history_days and rng.random() < history_fraction:
            t = midnight - dt.timedelta(seconds=rng.uniform(1, history_days * 86400))
        else:
            t = now - dt.timedelta(seconds=rng.uniform(0, spread_minutes * 60))
        r = rng.random()
        if last is not None and r < duplicates:
            exp.duplicates += 1
            yield Message("duplicate", last.data, dict(last.attributes), last.ordering_key)
            continue
        r = rng.random()
        if r < malformed:
            exp.malformed += 1
            base = {"event": "published", "post_id": f"bad-{run}-{i}", "user_id": "u0", "caption": "#oops",
                    "image_url": "https://x/y.jpg", "event_time": _time(t)}
            yield Message("malformed", _malformed(rng, base), {"event_id": f"{run}-{i}"}, "u0")
            continue
        if live and r < malformed + deletes:
            post_id, user, caption, keys, published_at = live.pop(rng.randrange(len(live)))
            when = max(t, published_at + dt.timedelta(seconds=1))
            body = {"event": "deleted", "post_id": post_id, "user_id": user, "caption": caption,
                    "image_url": None, "event_time": _time(when)}
            for k in keys:
                exp.counts[k] -= 1
            exp.deleted += 1
            last = Message("deleted", json.dumps(body, ensure_ascii=False).encode(),
                           {"event_time": body["event_time"], "event_id": f"{run}-{i}"}, user)
            yield last
            continue
        user = f"user{rng.randrange(1, 500)}"
        post_id = f"{run}-p{i}"
        picked = vocab.sample(rng, rng.randint(1, 10))
        if rng.random() < 0.2:  # the same tag twice in one caption, maybe spelled differently
            picked.append(picked[0])
        parts = []
        for key in picked:
            parts.append(" ".join(rng.choices(_WORDS, k=rng.randint(0, 3))))
            parts.append("#" + rng.choice(vocab.spellings[key]) + rng.choice(["", "", "", "!", ",", "."]))
        caption = " ".join(p for p in parts if p)
        keys = list(dict.fromkeys(picked))
        for k in keys:
            exp.counts[k] += 1
            exp.posts_by_tag.setdefault(k, []).append(post_id)
        exp.published += 1
        body = {"event": "published", "post_id": post_id, "user_id": user, "caption": caption,
                "image_url": f"{DEV_IMAGE_ORIGIN}/{post_id}.png", "event_time": _time(t)}
        live.append((post_id, user, caption, keys, t))
        last = Message("published", json.dumps(body, ensure_ascii=False).encode(),
                       {"event_time": body["event_time"], "event_id": f"{run}-{i}"}, user)
        yield last


def burst(tag: str, accounts: int, *, now: dt.datetime | None = None, seed: int = 1) -> list[Message]:
    """``accounts`` distinct accounts each publish one post with ``#tag`` within the last minute:
    the shape that trends (docs/TRENDS.md)."""
    return _posts(tag, [f"burst-{tag}-{i}" for i in range(accounts)], now, seed)


def flood(tag: str, posts: int, *, now: dt.datetime | None = None, seed: int = 1) -> list[Message]:
    """ONE account publishes ``posts`` posts with ``#tag`` within the last minute: one account, so
    it never passes the trends floor."""
    return _posts(tag, [f"flood-{tag}"] * posts, now, seed)


def _posts(tag: str, users: list[str], now: dt.datetime | None, seed: int) -> list[Message]:
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    out = []
    for i, user in enumerate(users):
        t = now - dt.timedelta(seconds=rng.uniform(0, 60))
        post_id = f"{run}-{tag.encode('utf-8').hex()[:12]}-{i}"
        body = {"event": "published", "post_id": post_id, "user_id": user, "caption": f"#{tag}",
                "image_url": f"{DEV_IMAGE_ORIGIN}/{post_id}.png", "event_time": _time(t)}
        out.append(Message("published", json.dumps(body, ensure_ascii=False).encode(),
                           {"event_time": body["event_time"], "event_id": f"{run}-b{i}"}, user))
    return out


def _tag_and_count(value: str) -> tuple[str, int]:
    tag, _, n = value.partition(":")
    return tag.lstrip("#"), int(n) if n else 30


def top_posts_messages(expected: Expected, tags: list[str], *, computed_at: dt.datetime | None = None,
                       n: int = 100) -> list[bytes]:
    """A top-posts list per tag: its posts (padded with synthetic ids) with dev image URLs."""
    computed_at = computed_at or dt.datetime.now(dt.timezone.utc)
    out = []
    for tag in tags:
        ids = list(dict.fromkeys(expected.posts_by_tag.get(tag, [])))[:n]
        ids += [f"{tag.encode('utf-8').hex()[:16]}-s{i}" for i in range(n - len(ids))]
        out.append(json.dumps({"hashtag": tag, "computed_at": _time(computed_at),
                               "posts": [{"post_id": pid, "image_url": f"{DEV_IMAGE_ORIGIN}/{pid}.png"}
                                         for pid in ids]}, ensure_ascii=False).encode())
    return out


def publish(messages, project: str, topic: str, *, rate: float = 0.0, progress: bool = True,
            total: int | None = None) -> int:
    """Publish with the user id as ordering key; ``rate`` messages/s (0 = as fast as possible)."""
    from google.cloud import pubsub_v1
    from tqdm import tqdm

    client = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True))
    path = client.topic_path(project, topic)
    futures = []
    start = time.monotonic()
    bar = tqdm(total=total, unit="msg", desc=f"publish {topic}", disable=not progress, file=sys.stderr)
    for i, m in enumerate(messages):
        if isinstance(m, bytes):
            m = Message("top", m, {})
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        futures.append(client.publish(path, m.data, ordering_key=m.ordering_key, **m.attributes))
        bar.update(1)
        if len(futures) >= 1000:
            for f in futures:
                f.result(timeout=60)
            futures.clear()
    for f in futures:
        f.result(timeout=60)
    bar.close()
    return i + 1 if "i" in locals() else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.loadgen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000, help="post-event messages to publish")
    ap.add_argument("--rate", type=float, default=0, help="messages per second (0: as fast as possible)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--deletes", type=float, default=0.05, help="fraction of deletes of earlier posts")
    ap.add_argument("--malformed", type=float, default=0.02, help="fraction of malformed messages")
    ap.add_argument("--duplicates", type=float, default=0.0, help="fraction of duplicate deliveries")
    ap.add_argument("--top-posts", type=int, default=10, help="publish top-posts lists for the N top tags")
    ap.add_argument("--expected-out", help="write the exact expected counts (JSON) here")
    ap.add_argument("--print-expected", type=int, default=0, metavar="N", help="print the N biggest tags")
    ap.add_argument("--dry-run", action="store_true", help="generate only, publish nothing")
    ap.add_argument("--burst", action="append", default=[], metavar="TAG[:N]",
                    help="N (default 30) distinct accounts post #TAG once each, now: makes it trend")
    ap.add_argument("--flood", action="append", default=[], metavar="TAG[:N]",
                    help="one account posts #TAG N (default 30) times, now: must not trend")
    args = ap.parse_args(argv)
    s = settings.Settings.from_env(os.environ)
    exp = Expected()
    msgs = generate(args.count, seed=args.seed, deletes=args.deletes, malformed=args.malformed,
                    duplicates=args.duplicates, expected=exp)
    if args.dry_run:
        for _ in msgs:
            pass
    else:
        publish(msgs, s.project, s.post_events_topic, rate=args.rate, total=args.count)
        for option, make in ((args.burst, burst), (args.flood, flood)):
            for value in option:
                tag, n = _tag_and_count(value)
                publish(make(tag, n, seed=args.seed), s.project, s.post_events_topic, rate=args.rate, total=n)
        top = [k for k, _ in exp.counts.most_common(args.top_posts)]
        if top:
            publish(top_posts_messages(exp, top), s.project, s.top_posts_topic, total=len(top))
    if args.expected_out:
        with open(args.expected_out, "w", encoding="utf-8") as f:
            json.dump(exp.to_json(), f, ensure_ascii=False, indent=1)
    print(f"sent {args.count} messages: {exp.published} published, {exp.deleted} deleted, "
          f"{exp.malformed} malformed, {exp.duplicates} duplicates; {len(exp.counts)} tags")
    for tag, n in exp.counts.most_common(args.print_expected):
        print(f"  #{tag}\t{n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
