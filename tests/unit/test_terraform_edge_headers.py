"""The security headers the edge (terraform/edge.tf) adds against the ones the app makes.

The app puts ``serving.app.security_headers(settings)`` on every response it generates;
the HTTP server's own 400/414/431 and Cloud Run's own errors never pass through it. In production the
global external Application Load Balancer's URL map adds the same headers (``replace = true``) to
every response it returns from the service, plus Strict-Transport-Security. These tests parse the
terraform (python-hcl2, as tests/unit/test_terraform.py) and check, for a given
``var.web_image_origins``:

* the URL map's response headers equal the app's headers for the Settings the app gets in Cloud Run
  (``Settings.from_env`` of the HASHTAGS_IMAGE_ORIGINS value cloud_run.tf computes, dev images off),
  plus HSTS, name for name and value for value, each with ``replace = true``, no name twice, no
  braces in a value (the load balancer would read ``{…}`` as one of its variables);
* they are on the URL map's top-level header_action, which the default route (every path) takes;
* the variable's validation only admits origins for which the two stay equal (a property test).

The HCL expressions are evaluated by a tiny evaluator (``HclEval``: string templates, lists,
``? :``, comparisons, ``&&``, ``[for … : …]``, var./local. references and the few functions the
module uses), so the CSP is computed from the terraform text, not copied. ``edge_header_problems``
returns what differs; the ``test_detects_*`` tests break a copy of the parsed config to show it
reports a missing header, a changed CSP and a header that would be appended instead of replaced.
"""
from __future__ import annotations

import copy
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hashtags.settings import Settings
from serving.app import security_headers
from tests.unit.test_terraform import block, load_terraform

HSTS = "Strict-Transport-Security"
IMAGE_ORIGINS_ENV = "HASHTAGS_IMAGE_ORIGINS"
# var.web_image_origins values checked: the default (none) and example deployments.
EXAMPLE_ORIGINS = [[], ["https://images.example.com"], ["https://img.example.net", "https://*.cdn.example:8443"]]


# --- a tiny HCL expression evaluator --------------------------------------------------------------

class HclEval:
    """Evaluates the HCL expressions python-hcl2 hands back as strings (``"${…}"`` templates).

    ``variables`` are the var.* values; locals come from the parsed module, evaluated on first use.
    Only what this module's expressions use is supported; anything else raises ValueError."""

    _FUNCTIONS = {
        "length": lambda v: len(v),
        "join": lambda sep, items: sep.join(items),
        "concat": lambda *lists: [x for lst in lists for x in lst],
        "alltrue": lambda items: all(items),
        "regex": lambda pattern, s: _regex(pattern, s),
    }

    def __init__(self, model: dict, variables: dict):
        self._locals_src = model["locals"]
        self._locals: dict = {}
        self._vars = variables

    # public ------------------------------------------------------------------------------------------
    def value(self, raw):
        """A parsed HCL value: strings are templates (evaluated), lists/dicts element-wise."""
        if isinstance(raw, str):
            return self.template(raw)
        if isinstance(raw, list):
            return [self.value(v) for v in raw]
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items()}
        return raw

    def template(self, text: str):
        parser = _Parser(text, self)
        parts = parser.template_parts(end=None)
        return _join_template(parts)

    def local(self, name: str):
        if name not in self._locals:
            if name not in self._locals_src:
                raise ValueError(f"local.{name} is not defined")
            self._locals[name] = self.value(self._locals_src[name])
        return self._locals[name]

    def var(self, name: str):
        if name not in self._vars:
            raise ValueError(f"var.{name} has no value in this evaluation")
        return self._vars[name]


def _regex(pattern: str, s: str) -> str:
    # terraform's regex(): the match (no capture groups here), an error when there is none. RE2 and
    # Python's re agree on the character classes the module uses; a final "$" is RE2's end of text,
    # which in Python is \Z (Python's "$" also matches before a trailing newline).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    m = re.search(pattern, s)
    if not m:
        raise ValueError(f"regex {pattern!r} does not match {s!r}")
    return m.group(0)


def _join_template(parts: list):
    if len(parts) == 1 and not isinstance(parts[0], str):  # "${expr}" alone keeps the value's type
        return parts[0]
    out = []
    for p in parts:
        if isinstance(p, bool) or not isinstance(p, (str, int, float)):
            raise ValueError(f"cannot interpolate {p!r} into a string")
        out.append(str(p))
    return "".join(out)


class _Parser:
    def __init__(self, text: str, ev: HclEval, scope: dict | None = None):
        self.s, self.i, self.ev, self.scope = text, 0, ev, scope or {}

    # lexical -------------------------------------------------------------------------------------------
    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, token: str) -> bool:
        self.ws()
        return self.s.startswith(token, self.i)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.i += len(token)
            return True
        return False

    def expect(self, token: str):
        if not self.take(token):
            raise ValueError(f"expected {token!r} at {self.i} in {self.s!r}")

    def ident(self) -> str:
        self.ws()
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*").match(self.s, self.i)
        if not m:
            raise ValueError(f"expected a name at {self.i} in {self.s!r}")
        self.i = m.end()
        return m.group(0)

    # templates (the text between quotes, or a whole hcl2 string) -------------------------------------
    def template_parts(self, end: str | None) -> list:
        parts, buf = [], []
        while True:
            if self.i >= len(self.s):
                if end is not None:
                    raise ValueError(f"unterminated string in {self.s!r}")
                break
            ch = self.s[self.i]
            if end is not None and ch == end:
                self.i += 1
                break
            if self.s.startswith("$${", self.i):
                buf.append("${")
                self.i += 3
            elif self.s.startswith("${", self.i):
                if buf:
                    parts.append("".join(buf))
                    buf = []
                self.i += 2
                parts.append(self.expr())
                self.expect("}")
            elif ch == "\\" and end is not None:
                nxt = self.s[self.i + 1]
                buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(nxt) or _fail(nxt))
                self.i += 2
            else:
                buf.append(ch)
                self.i += 1
        if buf or not parts:
            parts.append("".join(buf))
        return parts

    # expressions -------------------------------------------------------------------------------------
    def expr(self):
        cond = self.and_()
        if self.take("?"):
            # parse both branches, keep the chosen one (the other may not evaluate, like HCL's)
            yes = self.lazy(self.expr)
            self.expect(":")
            no = self.lazy(self.expr)
            if isinstance(self.ev, _NoEval):
                return None
            return yes() if cond else no()
        return cond

    def lazy(self, parse):
        """Parse an operand now, evaluate it only when called (for ?: and can())."""
        start = self.i
        saved_eval = self.ev
        self.ev = _NoEval()
        try:
            parse()
        finally:
            self.ev = saved_eval
        end = self.i
        text, scope, ev = self.s, dict(self.scope), self.ev

        def run():
            p = _Parser(text, ev, scope)
            p.i = start
            v = parse.__func__(p)
            if p.i != end:
                raise ValueError("lazy operand re-parsed differently")
            return v
        return run

    def and_(self):
        left = self.cmp()
        while self.take("&&"):
            right = self.cmp()
            left = bool(left) and bool(right)
        return left

    def cmp(self):
        left = self.unary()
        for op in ("==", "!=", ">=", "<=", ">", "<"):
            if self.take(op):
                right = self.unary()
                if isinstance(self.ev, _NoEval):
                    return None
                return {"==": left == right, "!=": left != right, ">=": left >= right,
                        "<=": left <= right, ">": left > right, "<": left < right}[op]
        return left

    def unary(self):
        if self.take("!"):
            v = self.unary()
            return None if isinstance(self.ev, _NoEval) else not v
        return self.primary()

    def primary(self):
        self.ws()
        ch = self.s[self.i] if self.i < len(self.s) else ""
        if self.take("("):
            v = self.expr()
            self.expect(")")
            return v
        if ch == '"':
            self.i += 1
            parts = self.template_parts(end='"')
            return None if isinstance(self.ev, _NoEval) else _join_template(parts)
        if self.take("["):
            return self.for_or_list()
        if m := re.compile(r"-?\d+(\.\d+)?").match(self.s, self.i):
            self.i = m.end()
            return float(m.group(0)) if m.group(1) else int(m.group(0))
        name = self.ident()
        if name in ("true", "false"):
            return name == "true"
        if self.peek("("):
            return self.call(name)
        return self.reference(name)

    def for_or_list(self):
        self.ws()
        if re.compile(r"for\s").match(self.s, self.i):
            self.i += 3
            name = self.ident()
            self.expect("in")
            items = self.expr()
            self.expect(":")
            body_start = self.i
            _ = self.lazy(self.expr)  # find the end of the body
            self.expect("]")
            if isinstance(self.ev, _NoEval):
                return None
            out = []
            for item in items:
                p = _Parser(self.s, self.ev, {**self.scope, name: item})
                p.i = body_start
                out.append(p.expr())
            return out
        return self.items("]")

    def items(self, close: str) -> list:
        """Comma-separated expressions up to ``close`` (a trailing comma allowed)."""
        items = []
        while not self.take(close):
            items.append(self.expr())
            if not self.take(","):
                self.expect(close)
                break
        return items

    def call(self, name: str):
        self.expect("(")
        if name == "can":
            arg = self.lazy(self.expr)
            self.expect(")")
            if isinstance(self.ev, _NoEval):
                return None
            try:
                arg()
                return True
            except ValueError:
                return False
        args = self.items(")")
        if isinstance(self.ev, _NoEval):
            return None
        if name not in HclEval._FUNCTIONS:
            raise ValueError(f"function {name}() is not supported by this evaluator")
        return HclEval._FUNCTIONS[name](*args)

    def reference(self, name: str):
        path = [name]
        while self.peek(".") and not self.peek(".."):
            self.i += 1
            path.append(self.ident())
        if isinstance(self.ev, _NoEval):
            return None
        if path[0] in self.scope and len(path) == 1:
            return self.scope[path[0]]
        if path[0] == "var" and len(path) == 2:
            return self.ev.var(path[1])
        if path[0] == "local" and len(path) == 2:
            return self.ev.local(path[1])
        raise ValueError(f"reference {'.'.join(path)} is not supported by this evaluator")


class _NoEval:
    """Stands in for the evaluator while an operand is only being parsed (skipped, not computed)."""


def _fail(ch):
    raise ValueError(f"unsupported escape \\{ch}")


# --- what the edge and the app send ----------------------------------------------------------------

def url_map(model: dict) -> dict:
    return model["resource"]["google_compute_url_map"]["web"]


def edge_headers(model: dict, origins: list[str]) -> list[tuple[str, str, object]]:
    """(name, value, replace) of every response header the site's URL map adds, values evaluated."""
    ev = HclEval(model, {"web_image_origins": origins})
    action = block(url_map(model), "header_action") or {}
    return [(h["header_name"], ev.value(h["header_value"]), h.get("replace"))
            for h in action.get("response_headers_to_add", [])]


def cloud_run_env(model: dict) -> dict[str, str]:
    """name -> raw value of the Cloud Run service's container environment."""
    out = {}

    def walk(v):
        if isinstance(v, dict):
            if set(v) >= {"name", "value"} and isinstance(v["name"], str):
                out[v["name"]] = v["value"]
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
    walk(model["resource"]["google_cloud_run_v2_service"]["web"])
    return out


def app_settings_in_cloud_run(model: dict, origins: list[str]) -> Settings:
    """The Settings the app builds from the environment cloud_run.tf gives it (image origins)."""
    ev = HclEval(model, {"web_image_origins": origins})
    raw = ev.value(cloud_run_env(model)[IMAGE_ORIGINS_ENV])
    return Settings.from_env({IMAGE_ORIGINS_ENV: raw})


def app_headers(model: dict, origins: list[str]) -> dict[str, str]:
    # Settings.dev_images is False: cloud_run.tf does not set HASHTAGS_DEV_IMAGES (test below)
    return dict(security_headers(app_settings_in_cloud_run(model, origins)))


def origins_valid(model: dict, origins: list[str]) -> bool:
    """Whether var.web_image_origins' validation admits ``origins``."""
    ev = HclEval(model, {"web_image_origins": origins})
    return all(ev.value(v["condition"]) for v in model["variable"]["web_image_origins"].get("validation", []))


def edge_header_problems(model: dict, origins: list[str]) -> list[str]:
    """How the edge's response headers differ from the app's (+ HSTS), each replacing, on every path."""
    problems = []
    m = url_map(model)
    if m.get("path_matcher") or m.get("host_rule"):
        problems.append("the URL map has host rules / path matchers: not every request takes the default route")
    found = edge_headers(model, origins)
    names = [n for n, _v, _r in found]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: added more than once")
    edge = {n: v for n, v, _r in found}
    expected = app_headers(model, origins)
    if HSTS in expected:
        problems.append(f"the app sends {HSTS}: the edge's value must then be compared with it")
    expected[HSTS] = edge.get(HSTS)
    for name, value in expected.items():
        if name not in edge:
            problems.append(f"{name}: not added at the edge")
        elif edge[name] != value:
            problems.append(f"{name}: edge {edge[name]!r} != app {value!r}")
    for name in sorted(set(edge) - set(expected)):
        problems.append(f"{name}: added at the edge but not by the app")
    for name, value, replace in found:
        if replace is not True:
            problems.append(f"{name}: replace = {replace!r} (must be true: the app's copy is replaced, not doubled)")
        if "{" in str(value) or "}" in str(value):
            problems.append(f"{name}: braces in the value (the load balancer reads {{...}} as a variable)")
    return problems


_MODEL = load_terraform()


@pytest.fixture(scope="module")
def model() -> dict:
    return _MODEL  # tests that change it change a deep copy


# --- the evaluator ------------------------------------------------------------------------------------

def test_evaluator_computes_the_kinds_of_expression_the_module_uses():
    ev = HclEval({"locals": {"a": "${join(\", \", local.b)}", "b": ["x", "${var.v[0]}"]}}, {"v": ["q"]})
    with pytest.raises(ValueError):
        ev.local("a")  # indexing is not supported: an error, never a silent wrong value
    ev = HclEval({"locals": {"img": '${length(var.o) > 0 ? join(" ", concat(["\'self\'"], var.o)) : "\'self\' https:"}',
                             "csp": "img-src ${local.img}; x"}}, {"o": []})
    assert ev.local("csp") == "img-src 'self' https:; x"
    ev = HclEval({"locals": {"img": '${length(var.o) > 0 ? join(" ", concat(["\'self\'"], var.o)) : "\'self\' https:"}'}},
                 {"o": ["https://a", "https://b"]})
    assert ev.local("img") == "'self' https://a https://b"
    ev = HclEval({"locals": {}}, {"o": ["ok", "a b"]})
    assert ev.template('${[for x in var.o : can(regex("^[!-~]+$", x))]}') == [True, False]
    assert ev.template('${alltrue([for x in var.o : can(regex("^[a-z]+$", x)) && x != "b"])}') is False
    assert ev.template('pre ${"\\"q\\""} $${literal}') == 'pre "q" ${literal}'


# --- the edge's headers -------------------------------------------------------------------------------

@pytest.mark.parametrize("origins", EXAMPLE_ORIGINS, ids=["default-no-origins", "one-origin", "two-origins"])
def test_edge_adds_exactly_the_apps_security_headers_and_hsts(model, origins):
    assert origins_valid(model, origins)
    assert edge_header_problems(model, origins) == []
    edge = {n: v for n, v, _r in edge_headers(model, origins)}
    # spelled out once, so a change on both sides at once is still seen here
    img_src = " ".join(["'self'", *origins]) if origins else "'self' https:"
    assert edge["Content-Security-Policy"] == (
        f"default-src 'none'; img-src {img_src}; style-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")
    assert set(edge) == {"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy",
                         "X-Frame-Options", "Cross-Origin-Opener-Policy", HSTS}


def test_the_terraform_default_is_what_the_app_gets_without_the_variable(model):
    assert model["variable"]["web_image_origins"]["default"] == []
    assert app_settings_in_cloud_run(model, []).image_origins == Settings().image_origins == ()


def test_cloud_run_runs_the_app_without_dev_images(model):
    env = cloud_run_env(model)
    assert IMAGE_ORIGINS_ENV in env
    assert "HASHTAGS_DEV_IMAGES" not in env, "production serves no generated images (Settings.dev_images)"


def test_hsts_is_a_year_with_subdomains_and_no_preload(model):
    hsts = {n: v for n, v, _r in edge_headers(model, [])}[HSTS]
    assert hsts == "max-age=31536000; includeSubDomains"
    directives = [d.strip() for d in hsts.split(";")]
    assert int(directives[0].removeprefix("max-age=")) >= 365 * 24 * 3600
    assert "preload" not in directives
    assert HSTS not in dict(security_headers(Settings())), \
        "HSTS is the edge's alone: the container speaks plain HTTP"


def test_headers_are_on_the_default_route_of_the_https_url_map(model):
    res = model["resource"]
    m = url_map(model)
    assert m["default_service"] == "${google_compute_backend_service.web.id}"
    assert "path_matcher" not in m and "host_rule" not in m, "every request takes the default route"
    assert block(m, "header_action")["response_headers_to_add"], "top-level header_action"
    assert res["google_compute_target_https_proxy"]["web"]["url_map"] == "${google_compute_url_map.web.id}"
    assert all(r is True for _n, _v, r in edge_headers(model, []))


# --- the validation keeps the two equal ---------------------------------------------------------------

def test_validation_rejects_origins_the_app_would_read_differently(model):
    assert origins_valid(model, ["https://images.example.com", "https://*.cdn.example:8443/p/"])
    for bad in ["https://a.example, https://b.example", "https://a.example;script-src *", " https://a.example",
                "", "https://a.example/'x'", 'https://a"', "https://ä.example", "https://{client_region}.example"]:
        assert not origins_valid(model, [bad]), bad


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=24) | st.sampled_from(["https://images.example.com", "https://*.x.example:1"]),
                max_size=4))
@example(["https://a.example", "https://b.example"])
@example(["https://a.example,https://b.example"])
def test_any_admitted_origins_give_the_same_headers_at_the_edge_and_in_the_app(origins):
    model = _MODEL
    if origins_valid(model, origins):
        assert edge_header_problems(model, origins) == []


# --- the checks bite ----------------------------------------------------------------------------------

def _headers_block(model: dict) -> list[dict]:
    return block(url_map(model), "header_action")["response_headers_to_add"]


def test_detects_a_missing_header(model):
    mutated = copy.deepcopy(model)
    headers = _headers_block(mutated)
    headers[:] = [h for h in headers if h["header_name"] != "X-Frame-Options"]
    assert edge_header_problems(mutated, []) == ["X-Frame-Options: not added at the edge"]


def test_detects_a_changed_csp(model):
    mutated = copy.deepcopy(model)
    mutated["locals"]["edge_content_security_policy"] = (
        mutated["locals"]["edge_content_security_policy"].replace("style-src 'self'", "style-src *"))
    problems = edge_header_problems(mutated, ["https://images.example.com"])
    assert len(problems) == 1 and problems[0].startswith("Content-Security-Policy: edge ")
    assert "style-src *" in problems[0]
    mutated = copy.deepcopy(model)
    mutated["locals"]["edge_csp_img_src"] = mutated["locals"]["edge_csp_img_src"].replace('"\'self\' https:"', '"https:"')
    assert [p.split(":")[0] for p in edge_header_problems(mutated, [])] == ["Content-Security-Policy"]
    assert edge_header_problems(mutated, ["https://images.example.com"]) == [], "only the no-origin branch changed"


def test_detects_an_appended_header_a_duplicate_and_a_path_matcher(model):
    mutated = copy.deepcopy(model)
    headers = _headers_block(mutated)
    headers[1]["replace"] = False
    headers.append(dict(headers[2]))
    url_map(mutated)["path_matcher"] = [{"name": "some", "default_service": "x"}]
    problems = edge_header_problems(mutated, [])
    assert f"{headers[1]['header_name']}: replace = False (must be true: the app's copy is replaced, not doubled)" in problems
    assert f"{headers[2]['header_name']}: added more than once" in problems
    assert any("path matchers" in p for p in problems)
    assert len(problems) == 3


def test_detects_a_header_the_app_does_not_send(model):
    mutated = copy.deepcopy(model)
    _headers_block(mutated).append({"header_name": "Permissions-Policy", "header_value": "camera=()", "replace": True})
    assert edge_header_problems(mutated, []) == ["Permissions-Policy: added at the edge but not by the app"]


def test_detects_a_validation_that_admits_an_origin_the_app_splits(model):
    mutated = copy.deepcopy(model)
    mutated["variable"]["web_image_origins"]["validation"] = [
        {"condition": '${alltrue([for o in var.web_image_origins : can(regex("^[!-~]+$", o))])}'}]
    origins = ["https://a.example,https://b.example"]
    assert origins_valid(mutated, origins) and not origins_valid(model, origins)
    assert [p.split(":")[0] for p in edge_header_problems(mutated, origins)] == ["Content-Security-Policy"]
    origins = ["https://{client_region}.example"]
    assert origins_valid(mutated, origins) and not origins_valid(model, origins)
    assert edge_header_problems(mutated, origins) == [
        "Content-Security-Policy: braces in the value (the load balancer reads {...} as a variable)"]
