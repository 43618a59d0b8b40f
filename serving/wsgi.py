"""WSGI entry point: ``gunicorn -c serving/gunicorn.conf.py serving.wsgi:app``.

Configuration comes from ``HASHTAGS_*`` environment variables (hashtags.settings.Settings). The
Bigtable client is created lazily by the first request of each worker, after gunicorn's fork."""
import logging

from serving import create_app

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
