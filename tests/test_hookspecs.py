"""Every hook is documented and exercised (datasette's ``test_plugin_hooks_are_documented``)."""

import ast
import inspect
import re
import types
import typing
from pathlib import Path

import lightning
import pytest

import r1kit
from r1kit import api, hookimpl
from r1kit.plugin import hookspecs
from r1kit.plugin.manager import build_registry, create_plugin_manager
from r1kit.plugin.registry import KINDS

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


def _hints(name):
    # hookspecs imports Lightning only for type checkers (it is slow to import)
    return typing.get_type_hints(SPECS[name], localns={"lightning": lightning})


def _named_types(hint):
    """Every type an annotation names: ``Register[RewardFn]`` names Register and RewardFn."""
    origin = typing.get_origin(hint)
    if origin is None:
        return [hint]
    named = [] if origin in (typing.Union, types.UnionType) else [origin]
    return named + [t for arg in typing.get_args(hint) for t in _named_types(arg)]


def test_module_docstring_names_every_kind():
    doc = " ".join(inspect.getdoc(hookspecs).split()).lower()
    number = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight"][len(KINDS)]
    assert f"there are {number} plugin kinds" in doc
    for kind in KINDS:
        assert kind.replace("_", " ") in doc, f"the module docstring does not name {kind}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_is_annotated(name):
    signature = inspect.signature(SPECS[name])
    unannotated = [p for p, param in signature.parameters.items()
                   if param.annotation is inspect.Parameter.empty]
    assert not unannotated, f"{name}: annotate {unannotated}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: annotate -> ..."


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hookspec_types_are_importable_from_the_api(name):
    named = {t for hint in _hints(name).values() for t in _named_types(hint)}
    ours = [t for t in named if getattr(t, "__module__", "").split(".")[0] == "r1kit"]
    for t in ours:
        assert t.__name__ in api.__all__ and getattr(api, t.__name__) is t, (
            f"{name} names {t.__module__}.{t.__name__}: export it from r1kit.api")


@pytest.mark.parametrize("name", REGISTRATION)
def test_registration_hook_takes_a_register_of_a_protocol(name):
    register = _hints(name)["register"]
    assert typing.get_origin(register) is api.Register, f"{name}: register: Register[...]"
    (kind,) = typing.get_args(register)
    assert getattr(kind, "_is_protocol", False), f"{name}: Register[{kind}] is no Protocol"


def test_each_kind_has_its_own_protocol():
    kinds = [typing.get_args(_hints(name)["register"]) for name in REGISTRATION]
    assert len(set(kinds)) == len(REGISTRATION)


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


def test_readme_plugins_import_only_the_api():
    imports = re.findall(r"^\s*(?:from|import) (r1kit\S*)", _writing_a_plugin_section(),
                         re.MULTILINE)
    assert imports and set(imports) == {"r1kit.api"}, imports


def test_readme_plugin_examples_register_one_of_each_kind():
    blocks = re.findall(r"^```python\n(.*?)^```", _writing_a_plugin_section(), re.S | re.M)
    modules = []
    for i, source in enumerate(blocks):
        module = types.ModuleType(f"r1kit_readme_example_{i}")
        exec(compile(source, f"README.md python block {i}", "exec"), vars(module))
        modules.append(module)
    registry = build_registry(create_plugin_manager(autoload=False, extra_plugins=tuple(modules)))
    from_readme = {kind: [e.name for e in registry.entries(kind) if e.plugin.startswith(
        "r1kit_readme_example_")] for kind in KINDS}
    assert all(from_readme.values()), f"kinds without a README example: {from_readme}"


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
