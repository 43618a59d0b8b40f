"""The recount's entry file (the Flex Template's FLEX_TEMPLATE_PYTHON_PY_FILE, docker/recount/
Dockerfile; the local DAG task's py_file): everything is in ``pipelines.recount_launch``."""
import os
import sys

if not __package__:  # run as a file (the Flex launcher, Airflow's Beam operator): make the project importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.recount_launch import main  # noqa: E402 (after the path)

if __name__ == "__main__":
    sys.exit(main())
