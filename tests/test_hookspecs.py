"""Every hook is documented and exercised (datasette's ``test_plugin_hooks_are_documented``)."""

import ast
import inspect
import re
import types
from pathlib import Path

import pytest

import r1kit
from r1kit import hookimpl, hookspecs
from r1kit.pluginmanager import build_registry, create_plugin_manager
from r1kit.registry import KINDS

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(r1kit.__file__).resolve().parent

SPECS = {name: fn for name, fn in vars(hookspecs).items()
         if inspect.isfunction(fn) and getattr(fn, "r1kit_spec", None) is not None}
REGISTRATION = sorted(name for name in SPECS if name.startswith("r1kit_register_"))
LIFECYCLE = sorted(set(SPECS) - set(REGISTRATION))


def _params(name):
    return list(inspect.signature(SPECS[name]).parameters)


def test_hookspecs_found():
    # Guards the parametrized tests below against silently testing nothing.
    assert REGISTRATION and LIFECYCLE
    undecorated = [name for name, fn in vars(hookspecs).items()
                   if inspect.isfunction(fn) and name.startswith("r1kit_") and name not in SPECS]
    assert not undecorated, f"r1kit_* functions without @hookspec: {undecorated}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_docstring(name):
    doc = inspect.getdoc(SPECS[name]) or ""
    assert name.startswith("r1kit_")
    assert re.search(r"^Called\b", doc, re.MULTILINE), f"{name}: say when it is called ('Called ...')"
    documented = re.findall(r":param (\w+):", doc)
    assert documented == _params(name), (f"{name}: :param entries {documented} do not match "
                                         f"the signature {_params(name)}")
    assert re.search(r":return: \S", doc), f"{name}: document the return value (':return: ...')"


def _writing_a_plugin_section() -> str:
    readme = REPO / "README.md"
    assert readme.exists(), "README.md is missing (it documents every hook in 'Writing a plugin')"
    section, level, fenced = None, 0, False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+)\s+(.*)", line)
        if heading and section is not None and len(heading.group(1)) <= level:
            break  # the next heading of the same or a higher level ends the section
        if section is not None:
            section.append(line)
        elif heading and heading.group(2).strip().lower().startswith("writing a plugin"):
            section, level = [], len(heading.group(1))
    assert section is not None, "README.md has no 'Writing a plugin' section"
    return "\n".join(section)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_in_readme(name):
    assert name in _writing_a_plugin_section(), (
        f"{name} is not mentioned in README.md's 'Writing a plugin' section")


def test_every_kind_has_a_registration_hook():
    assert REGISTRATION == sorted(f"r1kit_register_{kind}s" for kind in KINDS)


def test_build_registry_calls_every_registration_hook():
    calls = []
    plugin = types.ModuleType("r1kit_test_registration_hooks")
    for name in REGISTRATION:
        def impl(register, _name=name):
            calls.append(_name)
            assert callable(register)
        setattr(plugin, name, hookimpl(impl))
    build_registry(create_plugin_manager(autoload=False, extra_plugins=(plugin,)))
    assert sorted(calls) == REGISTRATION


def _hook_calls():
    """Every ``<something>.r1kit_<hook>(...)`` call in the r1kit package, with its location."""
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "hookspecs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in SPECS):
                calls.append((node.func.attr, f"{path.relative_to(PACKAGE)}:{node.lineno}", node))
    return calls


@pytest.mark.parametrize("name", LIFECYCLE)
def test_lifecycle_hook_is_called_with_keywords(name):
    calls = [(where, node) for hook, where, node in _hook_calls() if hook == name]
    assert calls, f"{name} is never called in the r1kit package"
    for where, node in calls:
        assert not node.args, f"{where}: call {name} with keyword arguments only"
        keywords = [kw.arg for kw in node.keywords]
        assert None not in keywords, f"{where}: call {name} with explicit keywords, not **kwargs"
        assert sorted(keywords) == sorted(_params(name)), (
            f"{where}: {name} called with {keywords}, the spec takes {_params(name)}")
