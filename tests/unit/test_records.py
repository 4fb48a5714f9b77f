"""backends._records against the real ``dataclasses``, for every record class backends defines.

The classes are found, not listed: every ``backends`` module is imported and each class the
stand-in built (``__record_fields__`` in its own dict) is checked. Its twin comes from running
the same module source again with ``backends._records`` swapped for the real ``dataclass`` and
``field``; a second twin has any written-out ``__init__`` taken away first, so the hot records'
hand-written ``__init__`` is compared with the one dataclasses would generate.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import backends._records as records
from tests.conftest import REPO

RECORDS_MODULE = "backends._records"
ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _backends_modules() -> list[str]:
    names = []
    for path in sorted((REPO / "backends").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        if "shim" in rel.parts:
            continue
        names.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return names


def _standin_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for name in _backends_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (isinstance(value, type) and value.__module__ == name
                    and "__record_fields__" in vars(value)):
                found[f"{name}.{value.__qualname__}"] = value
    return found


STANDIN = _standin_classes()


def _twin_module(name: str, strip_init: bool) -> dict[str, Any]:
    """``name``'s source run again with the real dataclasses behind ``from ._records import``."""
    real = sys.modules[RECORDS_MODULE]
    shim = types.ModuleType(RECORDS_MODULE)
    shim.__dict__.update(vars(real))
    shim.field = dataclasses.field  # type: ignore[attr-defined]

    def dataclass(cls: type | None = None, /, **options: Any) -> Any:
        def build(c: type) -> type:
            if strip_init and "__init__" in vars(c):
                delattr(c, "__init__")
            return dataclasses.dataclass(c, **options)

        return build if cls is None else build(cls)

    shim.dataclass = dataclass  # type: ignore[attr-defined]
    module = sys.modules[name]
    path = Path(module.__file__ or "")
    namespace: dict[str, Any] = {"__name__": name, "__package__": module.__package__,
                                 "__file__": str(path), "__builtins__": __builtins__}
    sys.modules[RECORDS_MODULE] = shim
    try:
        exec(compile(path.read_text(), str(path), "exec"), namespace)
    finally:
        sys.modules[RECORDS_MODULE] = real
    return namespace


_TWINS: dict[tuple[str, bool], dict[str, Any]] = {}


def _twin(key: str, strip_init: bool = False) -> type:
    cls = STANDIN[key]
    cache_key = (cls.__module__, strip_init)
    if cache_key not in _TWINS:
        _TWINS[cache_key] = _twin_module(cls.__module__, strip_init)
    found: Any = _TWINS[cache_key]
    for part in cls.__qualname__.split("."):
        found = found[part] if isinstance(found, dict) else getattr(found, part)
    assert isinstance(found, type) and dataclasses.is_dataclass(found)
    return found


def _values(cls: type, tag: str = "") -> list[str]:
    """One distinct, hashable, printable value per field."""
    return [f"{name}={tag}" for name in records.record_fields(cls)]


def _required(cls: type) -> list[str]:
    defaults = vars(cls)["__record_defaults__"]
    return [name for name in records.record_fields(cls) if name not in defaults]


def _same(value: Any) -> Any:
    """What two runs of one module's source agree on: a function default is a new object."""
    if isinstance(value, types.FunctionType):
        return ("function", value.__qualname__, value.__code__.co_code)
    return value


def _outcome(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, object]:
    try:
        made = cls(*args, **kwargs)
    except TypeError as err:
        return ("TypeError", str(err))
    return ("made", ADDRESS.sub(" at 0x", repr(made)))


def test_every_record_class_is_found() -> None:
    # The hot ones with a written-out __init__, and enough others to show discovery works.
    for key in ("backends.base.LogLine", "backends.logfile.LogEntry",
                "backends.snapshot.FileEntry", "backends.store.RunRecord",
                "backends.config.Compute", "backends.runspec.RunSpec"):
        assert key in STANDIN
    assert len(STANDIN) >= 20


@pytest.mark.parametrize("key", sorted(STANDIN))
def test_fields_defaults_and_match_args(key: str) -> None:
    cls, twin = STANDIN[key], _twin(key)
    fields = dataclasses.fields(twin)
    assert records.record_fields(cls) == tuple(f.name for f in fields)
    assert cls.__match_args__ == twin.__match_args__  # type: ignore[attr-defined]
    defaults = vars(cls)["__record_defaults__"]
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            how, factory = defaults[f.name]
            assert how == "factory" and factory() == f.default_factory(), f.name
            assert f.name not in vars(cls)  # no shared class attribute
        elif f.default is not dataclasses.MISSING:
            how, default = defaults[f.name]
            assert (how, _same(default)) == ("value", _same(f.default)), f.name
            assert _same(getattr(cls, f.name)) == _same(getattr(twin, f.name))
        else:
            assert f.name not in defaults, f.name


@pytest.mark.parametrize("key", sorted(STANDIN))
def test_init_binds_arguments_as_dataclasses_does(key: str) -> None:
    cls, twin = STANDIN[key], _twin(key)
    names = list(records.record_fields(cls))
    values = _values(cls)
    required = _required(cls)
    by_name = dict(zip(names, values, strict=True))
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (tuple(values), {}),
        ((), by_name),
        (tuple(by_name[n] for n in required), {}),
        ((), {n: by_name[n] for n in required}),
        ((*values, "extra"), {}),
        ((), {**by_name, "no_such_field": 1}),
        (tuple(values[:1]), {names[0]: "again"} if names else {}),
        (tuple(by_name[n] for n in required[:-1]), {}),
        ((), {}),
    ]
    for args, kwargs in calls:
        mine, theirs = _outcome(cls, args, kwargs), _outcome(twin, args, kwargs)
        assert mine == theirs, f"{key}({args}, {kwargs})"


@pytest.mark.parametrize("key", sorted(STANDIN))
def test_repr_eq_hash(key: str) -> None:
    cls, twin = STANDIN[key], _twin(key)
    values, other = _values(cls), _values(cls, "other")
    a, b, c = cls(*values), cls(*values), cls(*other)
    ta, tc = twin(*values), twin(*other)
    assert ADDRESS.sub(" at 0x", repr(a)) == ADDRESS.sub(" at 0x", repr(ta))
    assert (a == b, a == c, a != b) == (ta == twin(*values), ta == tc, ta != twin(*values))
    assert a.__eq__(ta) is NotImplemented and ta.__eq__(a) is NotImplemented
    sub, twin_sub = type("Sub", (cls,), {}), type("Sub", (twin,), {})
    assert (a.__eq__(sub(*values)), a == sub(*values)) == (
        ta.__eq__(twin_sub(*values)), ta == twin_sub(*values))
    assert (cls.__hash__ is None) == (twin.__hash__ is None)
    if twin.__hash__ is not None:
        assert hash(a) == hash(ta) and hash(c) == hash(tc)


@pytest.mark.parametrize("key", sorted(STANDIN))
def test_frozen_rules(key: str) -> None:
    cls, twin = STANDIN[key], _twin(key)
    mine, theirs = cls(*_values(cls)), twin(*_values(cls))
    frozen = twin.__dataclass_params__.frozen  # type: ignore[attr-defined]
    for target in (*records.record_fields(cls)[:1], "not_a_field"):
        for obj, error in ((mine, records.FrozenInstanceError),  # type: ignore[attr-defined]
                           (theirs, dataclasses.FrozenInstanceError)):
            obj = copy.copy(obj)
            if frozen:
                with pytest.raises(error) as raised:
                    setattr(obj, target, "changed")
                assert isinstance(raised.value, AttributeError)
                assert str(raised.value) == f"cannot assign to field {target!r}"
                with pytest.raises(error, match=f"cannot delete field {target!r}"):
                    delattr(obj, target)
            else:
                setattr(obj, target, "changed")
                assert getattr(obj, target) == "changed"


@pytest.mark.parametrize("key", sorted(STANDIN))
def test_default_factories_give_fresh_objects(key: str) -> None:
    cls = STANDIN[key]
    required = _required(cls)
    first, second = cls(*required), cls(*required)
    generated = _twin(key, strip_init=True)(*required)
    factories = [name for name, (how, _) in vars(cls)["__record_defaults__"].items()
                 if how == "factory"]
    for name in factories:
        assert getattr(first, name) == getattr(generated, name), name
        assert getattr(first, name) is not getattr(second, name), name


HAND_WRITTEN = sorted(key for key, cls in STANDIN.items()
                      if getattr(vars(cls).get("__init__"), "__module__", None) != RECORDS_MODULE)


def test_the_hot_records_are_the_hand_written_ones() -> None:
    for key in ("backends.base.LogLine", "backends.logfile.LogEntry",
                "backends.snapshot.FileEntry", "backends.store.RunRecord"):
        assert key in HAND_WRITTEN


@pytest.mark.parametrize("key", HAND_WRITTEN)
def test_hand_written_init_matches_the_generated_one(key: str) -> None:
    """Same parameters, order, kinds and defaults; a default factory is written as ``None``
    (filled in by the body, fresh each call: test_default_factories_give_fresh_objects)."""
    written = inspect.signature(vars(STANDIN[key])["__init__"])
    generated = inspect.signature(_twin(key, strip_init=True).__init__)  # type: ignore[misc]
    assert list(written.parameters) == list(generated.parameters)
    for name, param in written.parameters.items():
        expected = generated.parameters[name]
        assert param.kind == expected.kind, name
        if type(expected.default).__name__ == "_HAS_DEFAULT_FACTORY_CLASS":
            assert param.default is None, f"{name}: a factory field's default is None"
        else:
            assert param.default == expected.default, name


# Python 3.14 (PEP 649/749): a class body compiled without ``from __future__ import annotations``
# has no ``__annotations__`` in its dict, only an ``__annotate_func__`` that computes them.


def _lazy_body() -> dict[str, Any]:
    """A class namespace shaped the way 3.14 compiles ``x: int; y: str = "b"; z: ClassVar[int]``."""

    def annotate(format: int) -> dict[str, Any]:
        if format == 4:  # annotationlib.Format.STRING
            return {"x": "int", "y": "str", "z": "ClassVar[int]"}
        if format > 2:
            raise NotImplementedError
        return {"x": int, "y": str, "z": int}

    return {"__annotate_func__": annotate, "y": "b", "z": 3, "__module__": "lazy_module"}


def test_lazy_annotations_without_annotationlib_fail_loudly() -> None:
    if sys.version_info >= (3, 14):
        pytest.skip("this Python has annotationlib: test_lazy_annotations_are_read")
    body = _lazy_body()
    assert "__annotations__" not in type("Probe", (), dict(body)).__dict__
    with pytest.raises(RuntimeError, match="add 'from __future__ import annotations' to lazy_mod"):
        records.dataclass(type("Lazy", (), body))


def test_lazy_annotations_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    lazy: Any
    if sys.version_info >= (3, 14):  # the real thing: a module without the future import
        namespace: dict[str, Any] = {"__name__": "lazy_module"}
        exec("from typing import ClassVar\nclass Lazy:\n x: int\n y: str = 'b'\n"
             " z: ClassVar[int] = 3\n", namespace)
        lazy = records.dataclass(namespace["Lazy"])
    else:  # annotationlib's contract, as 3.14 keeps it: STRING asks for the source text
        fake = types.ModuleType("annotationlib")
        fake.Format = types.SimpleNamespace(STRING=4)  # type: ignore[attr-defined]
        fake.get_annotations = (  # type: ignore[attr-defined]
            lambda cls, format: vars(cls)["__annotate_func__"](format))
        monkeypatch.setitem(sys.modules, "annotationlib", fake)
        lazy = records.dataclass(type("Lazy", (), _lazy_body()))
    assert records.record_fields(lazy) == ("x", "y")
    assert repr(lazy(1)) == "Lazy(x=1, y='b')"
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        lazy()


def test_a_field_without_annotation_is_an_error_as_in_dataclasses() -> None:
    def body() -> dict[str, Any]:
        return {"__annotations__": {"x": "int"}, "y": records.field(default=1)}

    with pytest.raises(TypeError) as theirs:
        dataclasses.dataclass(type("Bad", (), {**body(), "y": dataclasses.field(default=1)}))
    with pytest.raises(TypeError) as mine:
        records.dataclass(type("Bad", (), body()))
    assert str(mine.value) == str(theirs.value)
