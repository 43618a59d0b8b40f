"""Hashtag extraction throughput (captions/s, one core), real implementation vs. baselines in the same run.

    .venv/bin/python bench/bench_extraction.py            # measure, print, write docs/BENCHMARKS.md
    .venv/bin/python bench/bench_extraction.py --no-write # measure and print only

Corpora (deterministic, seeded): captions of 25 words of which 5 are hashtags.
  ascii  - English words and tags
  mixed  - 60 % ASCII, 40 % other scripts (accented Latin, Japanese, Arabic, Korean, Hindi, Cyrillic),
           case/width variants, emoji, 10 % of captions carry a URL (with and without '#fragment')
Implementations:
  extract_hashtags           - hashtags.text (the real one)
  distinct_tags              - hashtags.text: extract + NFKC/casefold keys + dedupe + limits (what the job runs)
  baseline: naive regex port - twitter-text's algorithm written plainly: one `regex` match per tag with the
                               boundary consumed, greedy body, the "followed by # or ://" check in Python,
                               no fast paths and no URL pass
  baseline: str.split        - split on whitespace, keep words starting with '#', strip punctuation
                               (wrong on most edge cases; a floor for what "trivial" costs)
Each implementation gets --repeat timed passes over the whole corpus, interleaved with the others. The
primary figure is captions per CPU-second of this process (time.process_time: one core's throughput, robust
to the shared machine lending the core to other jobs), best and median; the best wall-clock rate is kept too.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import statistics
import string
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import regex  # noqa: E402

from hashtags.text import HASHTAG_SPECIAL_CHARS, distinct_tags, extract_hashtags  # noqa: E402

SECTION = "## Hashtag extraction"
BENCHMARKS_MD = ROOT / "docs" / "BENCHMARKS.md"

WORDS = (
    "the a of and to in is it you that he was for on are with as his they be at one have this from or "
    "had by hot word but what some we can out other were all there when up use your how said an each "
    "she which do their time if will way about many then them write would like so these her long make "
    "thing see him two has look more day could go come did number sound no most people my over know "
    "water than call first who may down side been now find summer beach sunset coffee friends weekend"
).split()
TAGS = (
    "love instagood photooftheday fashion beautiful happy cute tbt like4like followme picoftheday "
    "follow me selfie summer art instadaily friends repost nature girl fun style smile food travel "
    "fitness life beauty amazing instagram photography photo vscocam sun music beach"
).split()
OTHER_WORDS = "café münchen mañana東京 で 写真 مرحبا بكم 안녕 세상 नमस्ते दुनिया привет мир ça va".split()
OTHER_TAGS = [
    "Café", "München", "mañana", "東京", "カタカナ", "日本語ハッシュタグ", "ｌｏｖｅ", "LOVE", "Straße",
    "السياحة", "برنامه_نویسی", "می\u200cخواهم", "트위터", "महात्मा", "Москва", "İstanbul", "ශ්\u200dරීලංකා",
]
EMOJI = ["😍", "❤️", "✨", "👍🏽", "🔥", "🇫🇷"]
URLS = ["https://example.com/p/abc123", "https://x.com/page#frag", "www.example.org/a/#section", "x.co/abc"]


def make_corpus(kind: str, n: int, seed: int = 2026) -> list[str]:
    rnd = random.Random(seed)
    captions = []
    for _ in range(n):
        other = kind == "mixed" and rnd.random() < 0.4
        words = [rnd.choice(OTHER_WORDS if other and rnd.random() < 0.5 else WORDS) for _ in range(20)]
        tags = ["#" + rnd.choice(OTHER_TAGS if other and rnd.random() < 0.6 else TAGS) for _ in range(5)]
        if kind == "mixed":
            if rnd.random() < 0.3:
                words[rnd.randrange(20)] += rnd.choice(EMOJI)
            if rnd.random() < 0.3:
                i = rnd.randrange(5)
                tags[i] += rnd.choice(EMOJI + [".", "!", ","])
            if rnd.random() < 0.1:
                words[rnd.randrange(20)] = rnd.choice(URLS)
        seq = words + tags
        rnd.shuffle(seq)
        captions.append(" ".join(seq))
    return captions


# --- baselines ---------------------------------------------------------------------------------------

_SPECIALS = "".join(f"\\u{ord(c):04x}" for c in HASHTAG_SPECIAL_CHARS)
_ALNUM = rf"[\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}]"
_NAIVE = regex.compile(
    rf"(^|\ufe0e|\ufe0f|[^&\p{{L}}\p{{M}}\p{{Nd}}{_SPECIALS}])([#＃])(?![\ufe0f\u20e3])"
    rf"({_ALNUM}*\p{{L}}{_ALNUM}*)"
)
_END = regex.compile(r"[#＃]|://")


def naive_regex_port(text: str) -> list[str]:
    tags = []
    for m in _NAIVE.finditer(text):
        if _END.match(text, m.end()):
            continue
        tags.append(m.group(3))
    return tags


_PUNCT = string.punctuation + "。、！？"
_SPLIT = re.compile(r"\s+")


def split_baseline(text: str) -> list[str]:
    return [w[1:].strip(_PUNCT) for w in _SPLIT.split(text) if w.startswith(("#", "＃")) and len(w) > 1]


# --- measurement -------------------------------------------------------------------------------------

def measure(impls, captions: list[str], repeat: int) -> dict[str, dict]:
    """Round-robin: every pass times each implementation once, so load from other jobs on the
    (shared) machine hits all of them alike. Both the CPU time of this process (time.process_time:
    what one core delivers, even when the scheduler lends it to others) and wall time are kept."""
    tags = {name: sum(len(fn(c)) for c in captions) for name, fn in impls}  # warm-up + sanity count
    cpu: dict[str, list[float]] = {name: [] for name, _ in impls}
    wall: dict[str, list[float]] = {name: [] for name, _ in impls}
    for _ in range(repeat):
        for name, fn in impls:
            c0, w0 = time.process_time(), time.perf_counter()
            for c in captions:
                fn(c)
            c1, w1 = time.process_time(), time.perf_counter()
            cpu[name].append(len(captions) / max(c1 - c0, 1e-9))
            wall[name].append(len(captions) / (w1 - w0))
    return {
        name: {"best": max(cpu[name]), "median": statistics.median(cpu[name]),
               "wall_best": max(wall[name]), "tags": tags[name]}
        for name, _ in impls
    }


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": str(usable),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "regex": regex.__version__,
        "os": platform.platform(),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def render(results: list[dict], info: dict[str, str], args) -> str:
    lines = [
        SECTION,
        "",
        "Captions per second of one core (one process, no threads; per CPU-second of the process, "
        "`time.process_time`, and per wall-clock second), 25-word captions with 5 hashtags, "
        f"{args.captions:,} captions per corpus, best and median of {args.repeat} passes.",
        "",
        "Command: `.venv/bin/python bench/bench_extraction.py"
        + (f" --captions {args.captions}" if args.captions != DEFAULT_CAPTIONS else "")
        + (f" --repeat {args.repeat}" if args.repeat != DEFAULT_REPEAT else "")
        + "`",
        "",
        f"Machine: nproc={info['nproc']}, CPU: {info['cpu']}, {info['python']}, regex {info['regex']}, "
        f"{info['os']}. The machine is shared with other jobs (load average 1/5/15 min after the run: "
        f"{info['load']}), so the figures are a lower bound; passes are interleaved across implementations.",
        "",
        "| corpus | implementation | captions/CPU-s (best) | captions/CPU-s (median) | captions/wall-s (best) "
        "| tags found |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['corpus']} | {r['impl']} | {r['best']:,.0f} | {r['median']:,.0f} | {r['wall_best']:,.0f} "
            f"| {r['tags']:,} |"
        )
    target = 50_000
    real = {(r["corpus"], r["impl"]): r for r in results}
    verdict = []
    for corpus in ("ascii", "mixed"):
        r = real.get((corpus, "extract_hashtags"))
        if r:
            ok = "meets" if r["median"] >= target else "MISSES"
            verdict.append(f"{corpus}: median {r['median']:,.0f}/s {ok} the {target:,}/s target")
    lines += [
        "",
        "Target: extraction >= 50,000 captions/s on 25-word captions with 5 tags. " + "; ".join(verdict) + ".",
        "",
        "Notes: `extract_hashtags` is one precompiled `regex` pattern run with `findall` (the tag body is "
        "possessive, so twitter-text's \"not followed by `#` or `://`\" check needs no second pass); the URL "
        "pass runs only when a `#` follows a `/`. `distinct_tags` adds the key (ASCII fast path `str.lower`, "
        "else NFKC + casefold + NFKC) and the de-duplication the streaming job needs. The naive port finds "
        "the same tags on the URL-free captions (more on the mixed corpus: it has no URL pass) and is the "
        "speed of the obvious implementation; `str.split` is not conformant (no boundary rules, "
        "no scripts, keeps emoji) and only shows the floor.",
        "",
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = BENCHMARKS_MD) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        if not text.endswith("\n"):
            text += "\n"
        if not text.endswith("\n\n"):
            text += "\n"
        text += section
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section + ("\n" if nxt >= 0 and not section.endswith("\n\n") else "") + text[end:]
    path.write_text(text, encoding="utf-8")


DEFAULT_CAPTIONS = 20_000
DEFAULT_REPEAT = 7


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=DEFAULT_CAPTIONS)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/BENCHMARKS.md")
    args = parser.parse_args(argv)

    impls = [
        ("extract_hashtags", extract_hashtags),
        ("distinct_tags", distinct_tags),
        ("baseline: naive regex port", naive_regex_port),
        ("baseline: str.split", split_baseline),
    ]
    results = []
    for corpus in ("ascii", "mixed"):
        captions = make_corpus(corpus, args.captions)
        words = statistics.mean(len(c.split()) for c in captions)
        for name, r in measure(impls, captions, args.repeat).items():
            results.append({"corpus": corpus, "impl": name, **r})
            print(f"{corpus:6} {name:28} {r['best']:>10,.0f}/s best {r['median']:>10,.0f}/s median (CPU time) "
                  f"{r['wall_best']:>10,.0f}/s best wall  tags={r['tags']:,} words/caption={words:.1f}", flush=True)
    info = machine()
    section = render(results, info, args)
    print()
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"wrote the '{SECTION}' section of {BENCHMARKS_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
