"""The local stack's placeholder images, drawn with Pillow (serving/devimages.py says when they are
served): a deterministic square per name, so tiles render offline and are told apart at a glance."""
from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageDraw, ImageFont

SIZE = 320


@functools.lru_cache(maxsize=512)
def render_png(name: str) -> bytes:
    """A SIZE² PNG: background hue from sha256(name), a few circles, the name written in the middle."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    bg = (64 + digest[0] % 160, 64 + digest[1] % 160, 64 + digest[2] % 160)
    fg = (255, 255, 255) if sum(bg) < 400 else (20, 20, 20)
    img = Image.new("RGB", (SIZE, SIZE), bg)
    draw = ImageDraw.Draw(img)
    for i in range(3):
        x, y, r = digest[3 + i] % SIZE, digest[6 + i] % SIZE, 30 + digest[9 + i] % 60
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(min(255, c + 40) for c in bg))
    font = ImageFont.load_default(size=28)
    label = name[:18]
    box = draw.textbbox((0, 0), label, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    draw.text(((SIZE - w) / 2, (SIZE - h) / 2), label, fill=fg, font=font)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
