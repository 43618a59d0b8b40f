"""Generated placeholder images for the local stack (dev mode only), so pages render offline.

The local stack publishes top-posts lists whose image URLs are ``{DEV_IMAGE_ORIGIN}/<name>.png``:
https, so they pass the same validation as production URLs. In dev mode the page rewrites that
origin to this app's own ``/dev-images/<name>.png`` route, which draws a deterministic square
(colour and label from the name) with Pillow. Never enabled in production.
"""
from __future__ import annotations

import functools
import hashlib
import io
import re

DEV_IMAGE_ORIGIN = "https://img.hashtags.test"
DEV_IMAGE_PATH = "/dev-images/"
DEV_IMAGE_SIZE = 320
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


@functools.lru_cache(maxsize=512)
def render_png(name: str) -> bytes:
    """A DEV_IMAGE_SIZE² PNG: background hue from sha256(name), the name written in the middle."""
    from PIL import Image, ImageDraw, ImageFont  # only dev mode needs Pillow

    digest = hashlib.sha256(name.encode("utf-8")).digest()
    bg = (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)
    fg = (255, 255, 255) if sum(bg) < 400 else (20, 20, 20)
    img = Image.new("RGB", (DEV_IMAGE_SIZE, DEV_IMAGE_SIZE), bg)
    draw = ImageDraw.Draw(img)
    # a few deterministic shapes, so tiles are told apart at a glance
    for i in range(3):
        x, y = digest[3 + i] % DEV_IMAGE_SIZE, digest[6 + i] % DEV_IMAGE_SIZE
        r = 30 + digest[9 + i] % 60
        shade = tuple(min(255, c + 40) for c in bg)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=shade)
    try:
        font = ImageFont.load_default(size=28)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    label = name[:18]
    box = draw.textbbox((0, 0), label, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    draw.text(((DEV_IMAGE_SIZE - w) / 2, (DEV_IMAGE_SIZE - h) / 2), label, fill=fg, font=font)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
