"""The terraform module parsed with python-hcl2, for the tests/unit/test_terraform*.py files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2
from hcl2.utils import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
METADATA = ROOT / "docker" / "dataflow" / "metadata.json"
GENERATED = TERRAFORM / "generated" / "values.json"
_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def tf_files(directory: Path = TERRAFORM) -> list[Path]:
    return sorted(directory.glob("*.tf"))


def parse_file(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


def load_terraform(directory: Path = TERRAFORM) -> dict:
    """All .tf files of a module merged: {"resource": {type: {name: body}}, "locals": {...},
    "variable": {...}, "output": {...}, "terraform": [...], "data": {...}}."""
    model: dict = {"resource": {}, "data": {}, "locals": {}, "variable": {}, "output": {}, "terraform": []}
    for path in tf_files(directory):
        doc = parse_file(path)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    assert name not in model["resource"].setdefault(rtype, {}), f"duplicate {rtype}.{name}"
                    model["resource"][rtype][name] = body
        for block in doc.get("data", []):
            for rtype, named in block.items():
                model["data"].setdefault(rtype, {}).update(named)
        for block in doc.get("locals", []):
            model["locals"].update(block)
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                model[kind].update(block)
        model["terraform"].extend(doc.get("terraform", []))
    return model


_REF = re.compile(r"^\$\{(google_[a-z0-9_]+)\.([a-z0-9_]+)\.(name|id|app_profile_id)\}$")
_CODE_REF = re.compile(r"\$\{local\.code\.([a-z0-9_.]+)\}")


def code_value(path: str):
    """``local.code.<path>``: a value of the file terraform reads (terraform/generated/values.json)."""
    value = json.loads(GENERATED.read_text())
    for key in path.split("."):
        value = value[key]
    return value


def resolve(model: dict, value):
    """A literal, a reference to another resource's name/id (resolved to that resource's name), or
    ``local.code`` values (read from the generated file) in a string."""
    if not isinstance(value, str):
        return value
    m = _REF.match(value)
    if not m:
        whole = _CODE_REF.fullmatch(value)
        if whole:
            return code_value(whole.group(1))
        return _CODE_REF.sub(lambda c: str(code_value(c.group(1))), value)
    rtype, rname, _attr = m.groups()
    body = model["resource"].get(rtype, {}).get(rname)
    if body is None:
        return f"<missing {rtype}.{rname}>"
    key = "app_profile_id" if rtype == "google_bigtable_app_profile" else "name"
    return resolve(model, body.get(key))


def block(body: dict, name: str) -> dict | None:
    """The single nested block ``name`` of a resource body (hcl2 gives a list of one dict)."""
    found = body.get(name)
    if not found:
        return None
    assert isinstance(found, list) and len(found) == 1, f"expected one {name} block, got {found!r}"
    return found[0]
