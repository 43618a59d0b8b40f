"""DAG tests run with Airflow's own virtualenv, never the main one:

    scripts/airflow.sh pytest            # = .venv-airflow/bin/python -m pytest tests/dags

In a venv without Airflow (the main .venv) this folder is not collected at all, so the main suite
stays clean. With Airflow, an isolated AIRFLOW_HOME (SQLite) is set up BEFORE airflow is imported
(its configuration is read at import time), and migrated once per session when a test needs the DB.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"

if importlib.util.find_spec("airflow") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    if not os.environ.get("AIRFLOW_HOME") or not os.environ.get("HASHTAGS_DAG_TESTS_KEEP_HOME"):
        os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
    os.environ.setdefault("HASHTAGS_PY_INTERPRETER", str(ROOT / ".venv" / "bin" / "python"))
    for folder in (DAGS, ROOT):  # ROOT: the DAG imports hashtags.planning (on Composer it sits beside the DAG)
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def airflow_db():
    """``airflow db migrate`` into this session's AIRFLOW_HOME (SQLite), once."""
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    return os.environ["AIRFLOW_HOME"]
