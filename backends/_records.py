"""``@dataclass`` and ``field`` for the record types on the submit path, made ~10x cheaper.

``dataclasses`` builds each class through ~6 separate ``exec`` calls plus ``inspect.signature``
(and importing it pulls ``inspect``, ``ast``, ``dis``, ``tokenize`` into a CLI that needs none of
them): ~1.7 ms for a 17-field frozen class, 22 classes on one submit. This builds the same
methods (``__init__`` with defaults and factories, ``__repr__``, ``__eq__``, ``__hash__`` per
dataclasses' rules, frozen ``__setattr__``/``__delattr__``, ``__match_args__``) as closures,
with no ``exec``. Type checkers see the real ``dataclasses`` (same semantics, checked there).

Supported: ``@dataclass`` and ``@dataclass(frozen=True)`` on classes that define no ``__eq__``,
``__hash__``, ``__post_init__``, ``InitVar`` or ``ClassVar`` fields, and ``field(default=...)`` /
``field(default_factory=...)``. Not ``dataclasses.fields``/``asdict``/``replace``: use
``record_fields`` / ``as_dict``. Fields come from the class's own annotations; lazy ones (Python
3.14 without ``from __future__ import annotations``) are read through ``annotationlib``, and a class
whose fields cannot be found is an error, never a record without fields.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
else:

    class FrozenInstanceError(AttributeError):
        """Assigning to a field of a frozen record (as dataclasses.FrozenInstanceError)."""

    class _Missing:
        def __repr__(self) -> str:
            return "<missing>"

    _MISSING = _Missing()

    class _Field:
        __slots__ = ("default", "default_factory")

        def __init__(self, default, default_factory):
            self.default = default
            self.default_factory = default_factory

    def field(*, default=_MISSING, default_factory=_MISSING):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory)

    # No exec: compiling a generated __init__ alone costs ~0.5 ms for 17 fields. These closures
    # bind arguments the way a generated __init__ would (same TypeErrors for bad calls).
    def _make_init(cls, names, defaults, frozen):
        count = len(names)
        index = frozenset(names)
        qual = f"{cls.__qualname__}.__init__()"
        setter = object.__setattr__

        # The interpreter's own words for a bad call (ceval.c: too_many_positional).
        takes = f"from {count - len(defaults) + 1} to {count + 1}" if defaults else f"{count + 1}"

        def __init__(self, *args, **kwargs):
            if len(args) > count:
                raise TypeError(
                    f"{qual} takes {takes} positional argument{'s' if defaults or count else ''}"
                    f" but {len(args) + 1} were given"
                )
            if kwargs:
                values = dict(zip(names, args, strict=False))
                for key, value in kwargs.items():
                    if key not in index:
                        raise TypeError(f"{qual} got an unexpected keyword argument {key!r}")
                    if key in values:
                        raise TypeError(f"{qual} got multiple values for argument {key!r}")
                    values[key] = value
            elif len(args) == count:
                for name, value in zip(names, args, strict=False):
                    setter(self, name, value)
                return
            else:
                values = dict(zip(names, args, strict=False))
            missing = [n for n in names if n not in values and n not in defaults]
            if missing:
                quoted = [repr(n) for n in missing]
                listed = (  # as format_missing words it: 'a', 'a' and 'b', 'a', 'b', and 'c'
                    quoted[0]
                    if len(quoted) == 1
                    else " and ".join(quoted)
                    if len(quoted) == 2
                    else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"
                )
                plural = "s" if len(missing) > 1 else ""
                raise TypeError(
                    f"{qual} missing {len(missing)} required positional argument{plural}: {listed}"
                )
            for name in names:
                if name in values:
                    value = values[name]
                else:
                    how, default = defaults[name]
                    value = default() if how == "factory" else default
                setter(self, name, value)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        return __init__

    def _make_repr(cls, names):
        def __repr__(self):
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{self.__class__.__qualname__}({inner})"

        __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
        return __repr__

    def _make_eq(cls, names):
        def __eq__(self, other):
            if other.__class__ is self.__class__:
                return (
                    tuple(getattr(self, n) for n in names)
                    == tuple(getattr(other, n) for n in names)
                )
            return NotImplemented

        __eq__.__qualname__ = f"{cls.__qualname__}.__eq__"
        return __eq__

    def _make_hash(cls, names):
        def __hash__(self):
            return hash(tuple(getattr(self, n) for n in names))

        __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
        return __hash__

    def _make_frozen(cls, names):
        def __setattr__(self, name, value):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        __setattr__.__qualname__ = f"{cls.__qualname__}.__setattr__"
        __delattr__.__qualname__ = f"{cls.__qualname__}.__delattr__"
        return __setattr__, __delattr__

    def _own_annotations(cls):
        """The annotations written in ``cls``'s own body, as strings where the module has
        ``from __future__ import annotations`` (eager, in the class dict, on every version).
        Without it, Python 3.14 (PEP 649/749) keeps them lazy behind ``__annotate_func__``: read
        through ``annotationlib`` as strings (nothing is evaluated), never taken as "no fields"."""
        own = cls.__dict__
        if "__annotations__" in own:
            return own["__annotations__"]
        if own.get("__annotate_func__") is None and own.get("__annotate__") is None:
            return {}
        try:
            import annotationlib
        except ImportError:
            raise RuntimeError(
                f"backends._records cannot find the fields of {cls.__qualname__}: its "
                "annotations are lazy (__annotate__) and this Python has no annotationlib; "
                f"add 'from __future__ import annotations' to {cls.__module__}"
            ) from None
        return annotationlib.get_annotations(cls, format=annotationlib.Format.STRING)

    def _process(cls, frozen):
        names = []
        for base in reversed(cls.__mro__[1:]):
            for name in getattr(base, "__record_fields__", ()):
                if name not in names:
                    names.append(name)
        defaults = dict(getattr(cls, "__record_defaults__", {}))
        annotations = _own_annotations(cls)
        for name, value in cls.__dict__.items():
            if isinstance(value, _Field) and name not in annotations:
                raise TypeError(f"{name!r} is a field but has no type annotation")
        for name, annotation in annotations.items():
            if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.Class")):
                continue
            if name not in names:
                names.append(name)
            value = cls.__dict__.get(name, _MISSING)
            if isinstance(value, _Field):
                if value.default_factory is not _MISSING:
                    defaults[name] = ("factory", value.default_factory)
                    delattr(cls, name)
                elif value.default is not _MISSING:
                    defaults[name] = ("value", value.default)
                    setattr(cls, name, value.default)
                else:
                    defaults.pop(name, None)
                    delattr(cls, name)
            elif value is not _MISSING:
                defaults[name] = ("value", value)
            else:
                defaults.pop(name, None)
        seen_default = False
        for name in names:
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
        if "__init__" not in cls.__dict__:
            cls.__init__ = _make_init(cls, tuple(names), defaults, frozen)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = _make_repr(cls, tuple(names))
        if "__eq__" not in cls.__dict__:
            cls.__eq__ = _make_eq(cls, tuple(names))
        if frozen:
            for method in ("__setattr__", "__delattr__"):
                if method in cls.__dict__:
                    raise TypeError(f"cannot overwrite attribute {method} in class {cls.__name__}")
            cls.__setattr__, cls.__delattr__ = _make_frozen(cls, frozenset(names))
        if "__hash__" not in cls.__dict__ or (
            cls.__dict__["__hash__"] is None and "__eq__" not in cls.__dict__
        ):
            cls.__hash__ = _make_hash(cls, tuple(names)) if frozen else None
        cls.__match_args__ = tuple(names)
        cls.__record_fields__ = tuple(names)
        cls.__record_defaults__ = defaults
        return cls

    def dataclass(cls=None, /, *, frozen=False):
        if cls is None:
            return lambda c: _process(c, frozen)
        return _process(cls, frozen)


def record_fields(obj: object) -> tuple[str, ...]:
    """The field names of a record, in order (``dataclasses.fields`` for these records)."""
    names: tuple[str, ...] = getattr(obj, "__record_fields__", None) or tuple(
        getattr(obj, "__dataclass_fields__", {})
    )
    return names


def as_dict(obj: object) -> dict[str, object]:
    """A record's fields as a dict; values are not copied (``dataclasses.asdict``, shallow)."""
    return {name: getattr(obj, name) for name in record_fields(obj)}
