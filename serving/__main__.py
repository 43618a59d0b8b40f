"""Development server: ``python -m serving [--host 127.0.0.1] [--port 8080] [--dev-images]``.

Uses the Bigtable emulator when ``BIGTABLE_EMULATOR_HOST`` is set. Production (the image and the
local stack) runs ``python -m serving.server`` (granian, serving/server.py); this is Werkzeug's
threaded server, for debugging only."""
from __future__ import annotations

import argparse
import os
from urllib.parse import urlsplit

from hashtag_ops import logs
from hashtags.settings import LOCAL_WEB_URL
from serving import create_app


def main(argv: list[str] | None = None) -> None:
    default = urlsplit(LOCAL_WEB_URL)
    p = argparse.ArgumentParser(prog="python -m serving", description=__doc__.splitlines()[0])
    p.add_argument("--host", default=default.hostname)
    p.add_argument("--port", type=int, default=default.port)
    p.add_argument("--dev-images", action="store_true",
                   help="serve generated images for https://img.hashtags.test/ URLs (also HASHTAGS_DEV_IMAGES=1)")
    args = p.parse_args(argv)
    logs.setup("web")
    dev = True if args.dev_images else None
    app = create_app(dev_images=dev)
    print(f"serving on http://{args.host}:{args.port}/tags/<name> "
          f"(table {app.services.settings.table}, "
          f"emulator {os.environ.get('BIGTABLE_EMULATOR_HOST', 'none')})", flush=True)
    app.run(host=args.host, port=args.port, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
