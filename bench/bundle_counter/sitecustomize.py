"""Per-transform bundle counts and times of a local (BundleBasedDirectRunner) job, for
docs/BENCHMARKS.md "The local streaming job with trends". Loaded by Python at start-up when this
folder is on PYTHONPATH; does nothing unless BUNDLE_COUNT_OUT is set:

    PYTHONPATH=bench/bundle_counter BUNDLE_COUNT_OUT=/tmp/bc \\
        .venv/bin/python -m pytest -q tests/integration/test_streaming_job.py
    # every process that runs a pipeline writes /tmp/bc.<pid> every 10 s:
    # {"<transform label>": [bundles, seconds], ..., "__cpu__": [0, process CPU seconds]}

The test's job subprocesses inherit the environment, so they are counted too. Wraps Beam 2.77's
``TransformExecutor.attempt_call`` (runners/direct/executor.py); measurement only, never imported
by the project's code."""
import collections
import json
import os
import threading
import time

if os.environ.get("BUNDLE_COUNT_OUT"):
    try:
        from apache_beam.runners.direct import executor

        counts, seconds = collections.Counter(), collections.Counter()
        attempt_call = executor.TransformExecutor.attempt_call

        def counted(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return attempt_call(self, *args, **kwargs)
            finally:
                label = self._applied_ptransform.full_label
                counts[label] += 1
                seconds[label] += time.perf_counter() - start

        executor.TransformExecutor.attempt_call = counted
        out = f"{os.environ['BUNDLE_COUNT_OUT']}.{os.getpid()}"

        def dump():
            while True:
                time.sleep(10)
                with open(out, "w") as f:
                    json.dump({**{k: [counts[k], round(seconds[k], 2)] for k in counts},
                               "__cpu__": [0, round(time.process_time(), 1)]}, f, indent=0)

        threading.Thread(target=dump, daemon=True).start()
    except Exception as e:  # a Beam that moved the executor: say so, run unmeasured
        print(f"bundle_counter: not installed ({type(e).__name__}: {e})")
