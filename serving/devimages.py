"""Placeholder images for the local stack (dev mode only, never in production), so pages render offline.

The local stack publishes image URLs ``{DEV_IMAGE_ORIGIN}/<name>.png``: https, so they pass the same
validation as production URLs. In dev mode the page rewrites that origin to this app's own
``/dev-images/<name>.png`` route, which answers devstack.devimages' drawing of the name.
"""
from __future__ import annotations

import re

from hashtags.settings import DEV_IMAGE_ORIGIN

DEV_IMAGE_PATH = "/dev-images/"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,80}")


def valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name


def rewrite_url(url: str) -> str:
    """``https://img.hashtags.test/x.png`` → ``/dev-images/x.png``; any other URL unchanged."""
    prefix = DEV_IMAGE_ORIGIN + "/"
    if url.startswith(prefix):
        name = url[len(prefix):]
        if name.endswith(".png") and valid_name(name[:-4]):
            return DEV_IMAGE_PATH + name
    return url
