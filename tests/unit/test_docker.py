"""The Dockerfiles (docker/web, docker/dataflow) and the flex template metadata.

`docker build` cannot run on these machines, so these tests check what a build and a container
start would need: the files each COPY names exist and pass the Dockerfile's .dockerignore, the
entry points (the web server module and WSGI module, the flex template's py file and setup file) exist
and import, the web image's dependency list covers every third-party import of the code it ships,
and the images are pinned, non-root (web) and have a HEALTHCHECK. checkov checks the rest
(scripts/checkov.sh).
"""
from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "docker" / "web" / "Dockerfile"
FLEX = ROOT / "docker" / "dataflow" / "Dockerfile"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            current = ""
    return out


def args_of(path: Path, word: str) -> list[str]:
    return [a for w, a in instructions(path) if w == word]


def env_of(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for a in args_of(path, "ENV"):
        for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', a):
            env[key] = value.strip('"')
    return env


def copy_sources(path: Path) -> list[str]:
    sources = []
    for a in args_of(path, "COPY"):
        parts = [p for p in a.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in a.split()):
            continue
        sources += parts[:-1]
    return sources


def dockerignore_allows(path: Path, rel: str) -> bool:
    """BuildKit's <Dockerfile>.dockerignore semantics, enough for our whitelist files."""
    ignore = Path(str(path) + ".dockerignore")
    allowed = True
    for line in ignore.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(rel, pattern) or rel.startswith(pattern + "/"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", [WEB, FLEX], ids=["web", "dataflow"])
def test_copied_files_exist_and_are_in_the_build_context(dockerfile):
    sources = copy_sources(dockerfile)
    assert sources
    for src in sources:
        rel = src.rstrip("/")
        assert (ROOT / rel).exists(), f"{dockerfile.parent.name}: COPY {src} does not exist"
        assert dockerignore_allows(dockerfile, rel), f"{rel} is excluded by the .dockerignore"
    assert not dockerignore_allows(dockerfile, ".venv"), "the build context must not carry .venv"


@pytest.mark.parametrize("dockerfile", [WEB, FLEX], ids=["web", "dataflow"])
def test_base_images_are_pinned_and_there_is_a_healthcheck(dockerfile):
    froms = args_of(dockerfile, "FROM")
    assert froms
    for f in froms:
        image = f.split()[0]
        assert ":" in image.split("/")[-1] or "@sha256:" in image, f"unpinned base image {image}"
        assert not image.endswith(":latest"), image
    assert args_of(dockerfile, "HEALTHCHECK"), "no HEALTHCHECK"


def test_web_image_runs_the_server_module_as_non_root():
    users = args_of(WEB, "USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert json.loads(args_of(WEB, "CMD")[-1]) == ["python", "-m", "serving.server"]
    assert (ROOT / "serving" / "server.py").is_file()
    assert not (ROOT / "serving" / "gunicorn.conf.py").exists(), "one server configuration"
    assert "python:3.11" in args_of(WEB, "FROM")[-1]
    assert "-c /tmp/requirements.lock" in " ".join(args_of(WEB, "RUN")), "install pinned by the lock"


def test_server_binds_to_cloud_runs_port_on_all_interfaces():
    """What ``python -m serving.server`` would bind in the container (PORT from Cloud Run), read
    back from the granian server object it builds, with the configuration's defaults."""
    code = ("import os, serving.server as s; p = s.build_parser().parse_args([]); "
            "srv = s.build_server(p.host, p.port, s.server_config()); "
            "print(srv.bind_addr, srv.bind_port, srv.interface, srv.workers, srv.blocking_threads, "
            "srv.backpressure, srv.http1_settings.header_read_timeout, srv.workers_kill_timeout)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEB_")}
    env.update(PORT="9123", WEB_CONCURRENCY="2")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["0.0.0.0", "9123", "wsgi", "2", "16", "1024", "10000", "8"]


def test_web_wsgi_module_imports_and_exposes_a_flask_app():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHTAGS_")}
    code = ("import serving.wsgi as w, flask; assert isinstance(w.app, flask.Flask); "
            "print(sorted(r.rule for r in w.app.url_map.iter_rules()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "/healthz" in out.stdout and "/readyz" in out.stdout, out.stdout


def _third_party_imports(sources: list[str]) -> set[str]:
    """Top-level third-party modules imported by ``sources`` (package directories or .py files)."""
    names: set[str] = set()
    for src in sources:
        for path in ([ROOT / src] if src.endswith(".py") else (ROOT / src).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    local = {"hashtags", "hashtag_store", "serving", "hashtag_ops", "pipelines", "devstack", "__future__"}
    return {n for n in names - local if n not in sys.stdlib_module_names}


def _closure(dists: set[str]) -> set[str]:
    """The distributions and their (non-extra) requirements, transitively, as installed here."""
    seen: set[str] = set()
    todo = [d.lower().replace("_", "-") for d in dists]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for r in reqs:
            if "extra ==" in r:
                continue
            todo.append(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0].lower().replace("_", "-"))
    return seen


def test_web_requirements_cover_every_import_of_the_shipped_code():
    listed = {line.strip() for line in (ROOT / "docker/web/requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    installed = _closure(listed)
    dists_of = md.packages_distributions()
    imports = _third_party_imports(["serving", "hashtags", "hashtag_store", "hashtag_ops/__init__.py",
                                    "hashtag_ops/logs.py"])
    missing = {}
    for mod in imports:
        dists = {d.lower().replace("_", "-") for d in dists_of.get(mod, [])}
        assert dists, f"{mod} is not installed in the dev venv"
        if not dists & installed:
            missing[mod] = dists
    assert not missing, f"docker/web/requirements.txt misses: {missing}"
    lock = {line.split("==")[0].lower().replace("_", "-")
            for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line}
    assert {d.lower() for d in listed} <= lock, "every web requirement is pinned by requirements.lock"


def test_the_shipped_code_imports_dev_tooling_only_when_the_dev_mode_asks():
    """The web image has no devstack/ (nor Pillow): a module-level import of it in the shipped
    packages would stop the production server at start-up."""
    for path in [p for src in ("serving", "hashtags", "hashtag_store") for p in (ROOT / src).rglob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in ("devstack", "PIL")], f"{path}: {names}"
    assert "devstack" not in (ROOT / "docker/web/Dockerfile").read_text()


def test_flex_template_entry_points():
    env = env_of(FLEX)
    workdir = [a for a in args_of(FLEX, "ARG") if a.startswith("WORKDIR=")][0].split("=", 1)[1]
    py_file = env["FLEX_TEMPLATE_PYTHON_PY_FILE"].replace("${WORKDIR}", workdir)
    assert py_file == f"{workdir}/pipelines/streaming_main.py"
    # The file, relative to the image's WORKDIR, is copied from the repository root.
    assert (ROOT / py_file[len(workdir) + 1:]).is_file()
    # Workers install nothing at start-up: nothing for the launcher to stage.
    assert not {"FLEX_TEMPLATE_PYTHON_SETUP_FILE", "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE",
                "FLEX_TEMPLATE_PYTHON_EXTRA_PACKAGES"} & set(env)
    source = (ROOT / "pipelines" / "streaming_main.py").read_text()
    assert re.search(r'^if __name__ == "__main__":', source, re.M), "the launcher runs it as a script"
    module = importlib.import_module("pipelines.streaming_main")
    assert callable(module.run)


def _locked(dist: str) -> str:
    versions = dict(line.split("==", 1) for line in (ROOT / "requirements.lock").read_text().splitlines()
                    if "==" in line and not line.startswith("#"))
    return versions[dist].split()[0].split(";")[0]


def test_one_image_for_launcher_and_workers_on_the_locked_beam():
    """The final stage is Beam's SDK container at the locked apache-beam version (the workers'
    image), with Google's template launcher binary copied in (the launcher image), the project
    installed from the lock at build time, and the SDK's boot as entry point."""
    froms = [f.split() for f in args_of(FLEX, "FROM")]
    final = froms[-1][0]
    repo, _, tag = final.partition(":")
    assert repo == f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk"
    assert tag == _locked("apache-beam") == importlib.metadata.version("apache-beam")
    launcher_stage = [f for f in froms[:-1] if len(f) == 3 and f[1].upper() == "AS"]
    assert [f[0].split(":")[0] for f in launcher_stage] == [
        "gcr.io/dataflow-templates-base/python311-template-launcher-base"]
    stage = launcher_stage[0][2]
    launcher = "/opt/google/dataflow/python_template_launcher"
    assert f"--from={stage} {launcher} {launcher}" in args_of(FLEX, "COPY")
    run = " ".join(args_of(FLEX, "RUN"))
    assert "pip install -c requirements.lock ." in run and "pip check" in run
    assert f"!= '{tag}'" in run or f"== '{tag}'" in run, "the build checks Beam stayed at the base image's version"
    assert json.loads(args_of(FLEX, "ENTRYPOINT")[-1]) == ["/opt/apache/beam/boot"]
    setup_src = (ROOT / "setup.py").read_text()
    assert f'"apache-beam[gcp]=={tag}"' in setup_src, "setup.py pins the same Beam"


def test_flex_template_image_copies_every_package_setup_py_ships():
    setup_src = (ROOT / "setup.py").read_text()
    packages = set(re.findall(r'"([a-z_]+)", "\1\.\*"', setup_src))
    assert packages, "could not read setup.py's packages"
    copied = {s.rstrip("/") for s in copy_sources(FLEX)}
    assert packages <= copied, f"setup.py ships packages the image does not copy: {packages - copied}"


def test_flex_template_metadata_is_valid():
    meta = json.loads((ROOT / "docker" / "dataflow" / "metadata.json").read_text())
    assert meta["name"] and meta["description"] and meta["streaming"] is True
    for p in meta["parameters"]:
        assert set(p) <= {"name", "label", "helpText", "isOptional", "regexes", "paramType"}, p
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p["name"])
    params = {p["name"]: p for p in meta["parameters"]}
    assert "ordering" not in params["post_events_subscription"]["helpText"].replace("no message ordering", "")
    image = params["sdk_container_image"]
    assert image["isOptional"] is False
    good = "us-central1-docker.pkg.dev/hashtags-prod/hashtags/streaming:0123456789ab"
    assert all(re.search(rx, good) for rx in image["regexes"])
    assert not any(re.search(rx, "streaming") for rx in image["regexes"])
    assert all(re.search(rx, "12") for rx in params["count_generation"]["regexes"])
    assert not any(re.search(rx, "-1") for rx in params["count_generation"]["regexes"])


def test_cloud_build_config_builds_both_dockerfiles_and_the_spec_from_the_streaming_image():
    import yaml

    config = yaml.safe_load((ROOT / "docker" / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in config["steps"]}
    builds = [s for s in config["steps"] if s["args"][0] == "build" and "-f" in s["args"]]
    built = {s["args"][s["args"].index("-f") + 1]: s["args"][s["args"].index("-t") + 1] for s in builds}
    assert built == {"docker/web/Dockerfile": "${_REPO}/web:${_TAG}",
                     "docker/dataflow/Dockerfile": "${_REPO}/streaming:${_TAG}",
                     "docker/recount/Dockerfile": "${_REPO}/recount:${_TAG}"}
    assert set(config["images"]) == {"${_REPO}/web:${_TAG}", "${_REPO}/streaming:${_TAG}", "${_REPO}/recount:${_TAG}"}
    # the recount launcher is the streaming image of this build with another entry file
    assert "--build-arg=STREAMING_IMAGE=${_REPO}/streaming:${_TAG}" in steps["recount"]["args"]
    assert "--metadata-file=docker/dataflow/recount-metadata.json" in steps["recount-template-spec"]["args"]
    assert "${_STAGING}/templates/recount-${_TAG}.json" in steps["recount-template-spec"]["args"]
    # the template spec names the streaming image (the one terraform passes as sdk_container_image),
    # written after that image is pushed
    spec = steps["flex-template-spec"]
    assert spec["args"][:3] == ["dataflow", "flex-template", "build"]
    assert "--image=${_REPO}/streaming:${_TAG}" in spec["args"]
    assert "--metadata-file=docker/dataflow/metadata.json" in spec["args"]
    assert spec["waitFor"] == ["push-streaming"] and steps["push-streaming"]["waitFor"] == ["streaming"]


def test_recount_launcher_is_the_streaming_image_with_recount_main_as_entry():
    recount = ROOT / "docker" / "recount" / "Dockerfile"
    assert args_of(recount, "FROM") == ["${STREAMING_IMAGE}"]
    assert [i for i, _ in instructions(recount) if i not in ("ARG", "FROM", "ENV", "HEALTHCHECK")] == []  # no layer
    assert env_of(recount)["FLEX_TEMPLATE_PYTHON_PY_FILE"] == "/template/pipelines/recount_main.py"
    workdir = [a for a in args_of(FLEX, "ARG") if a.startswith("WORKDIR=")][0].split("=", 1)[1]
    assert workdir == "/template" and (ROOT / "pipelines" / "recount_main.py").is_file()
