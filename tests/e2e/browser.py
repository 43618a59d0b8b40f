"""Helpers of the browser tests: Debian's chromium, dev-image top posts, and the app served on a
loopback port by a Werkzeug thread (the page's bytes are the app's; the server is not under test here).
The ``browser`` fixture is in conftest.py."""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from hashtags.layout import TopPost
from serving.devimages import DEV_IMAGE_ORIGIN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing (apt: chromium)")


def dev_posts(tag: str, n: int = 100) -> tuple[TopPost, ...]:
    """``n`` top posts whose images the app generates itself (dev images: no internet needed)."""
    return tuple(TopPost(f"{tag}-{i:03d}", f"{DEV_IMAGE_ORIGIN}/{tag}-{i:03d}.png") for i in range(n))


@contextmanager
def serving(app) -> Iterator[str]:
    """``app`` on a free loopback port; yields its base URL."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        t.join(10)
