"""Records: classes of named fields, the part of :mod:`dataclasses` largezero uses.

Why not dataclasses: it imports :mod:`inspect`, and with it ast, dis and tokenize, which
cost about 15 ms of the 40 ms start-up budget on the CI machine (``python -X importtime``).
This keeps what the package needs and nothing else: fields with a default or a default
factory, ``repr=False``, ``frozen``, value equality (and hashing when frozen),
``__post_init__``, inheritance of fields, :func:`replace`, :func:`asdict` and
:func:`fields`. Type checkers see it as a dataclass (PEP 681).
"""

from __future__ import annotations

TYPE_CHECKING = False  # not from typing: start-up pays for every module imported here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs: object) -> object:
        return lambda function: function


class FrozenInstanceError(AttributeError):
    """An assignment to a field of a frozen record."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """One field of a record: its name, default or default factory, and whether repr shows it."""

    __slots__ = ("name", "default", "default_factory", "repr")

    def __init__(self, default: object, default_factory: object, repr: bool) -> None:  # noqa: A002
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot give both default and default_factory")
        self.name = ""
        self.default: Any = default
        self.default_factory: Any = default_factory
        self.repr = repr


def field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True) -> Any:  # noqa: A002
    """A field's default, default factory or repr flag, as ``dataclasses.field``."""
    return Field(default, default_factory, repr)


def _is_class_var(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    head = text.split("[", 1)[0]
    return head in ("ClassVar", "typing.ClassVar")


def _own_fields(cls: type) -> list[Field]:
    own: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_class_var(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        spec = value if isinstance(value, Field) else Field(value, MISSING, True)
        spec.name = name
        if spec.default is MISSING:
            if name in cls.__dict__:
                delattr(cls, name)  # a bare field() must not shadow the instance attribute
        else:
            setattr(cls, name, spec.default)
        own.append(spec)
    return own


def _check_order(specs: list[Field]) -> None:
    seen_default = False
    for spec in specs:
        if spec.default is MISSING and spec.default_factory is MISSING:
            if seen_default:
                raise TypeError(f"non-default field {spec.name!r} follows a field with a default")
        else:
            seen_default = True


def _compile_init(specs: list[Field], frozen: bool, post_init: bool, qualname: str) -> Callable[..., None]:
    params, body = ["self"], []
    scope: dict[str, object] = {"_MISSING": MISSING, "_setattr": object.__setattr__}
    for spec in specs:
        value = spec.name
        if spec.default_factory is not MISSING:
            params.append(f"{spec.name}=_MISSING")
            value = f"_factory_{spec.name}() if {spec.name} is _MISSING else {spec.name}"
            scope[f"_factory_{spec.name}"] = spec.default_factory
        elif spec.default is not MISSING:
            params.append(f"{spec.name}=_default_{spec.name}")
            scope[f"_default_{spec.name}"] = spec.default
        else:
            params.append(spec.name)
        body.append(f"  _setattr(self, {spec.name!r}, {value})" if frozen else f"  self.{spec.name} = {value}")
    if post_init:
        body.append("  self.__post_init__()")
    source = f"def __init__({', '.join(params)}) -> None:\n" + ("\n".join(body) or "  pass") + "\n"
    exec(source, scope)  # noqa: S102
    init: Callable[..., None] = scope["__init__"]  # type: ignore[assignment]
    init.__qualname__ = f"{qualname}.__init__"
    return init


def _generic_init(cls: type, specs: list[Field], frozen: bool) -> Callable[..., None]:
    # Compiling an __init__ costs about 0.15 ms, and a zero job builds only a few instances of
    # a dozen of the package's 40 records: those are bound here, by hand. A class built often
    # (the model's bios) gets the compiled __init__ after COMPILE_AFTER instances.
    names = [spec.name for spec in specs]
    known = set(names)
    count = [0]
    post_init = hasattr(cls, "__post_init__")  # decided here, as dataclasses does

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        count[0] += 1
        if count[0] > COMPILE_AFTER:
            init = _compile_init(specs, frozen, post_init, cls.__qualname__)
            cls.__init__ = init  # type: ignore[misc]
            init(self, *args, **kwargs)
            return
        if len(args) > len(names):
            raise TypeError(f"{cls.__qualname__}() takes {len(names)} positional arguments but {len(args)} were given")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name not in known:
                raise TypeError(f"{cls.__qualname__}() got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{cls.__qualname__}() got multiple values for argument {name!r}")
            values[name] = value
        for spec in specs[len(args):]:
            if spec.name in values:
                continue
            if spec.default_factory is not MISSING:
                values[spec.name] = spec.default_factory()
            elif spec.default is not MISSING:
                values[spec.name] = spec.default
            else:
                raise TypeError(f"{cls.__qualname__}() missing required argument {spec.name!r}")
        self.__dict__.update(values)  # the instance dict directly: frozen records too
        if post_init:
            self.__post_init__()  # type: ignore[attr-defined]

    return __init__


COMPILE_AFTER = 100


# The methods every record shares; they read the field names from the class.
def _repr(self: object) -> str:
    inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record_shown__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({inner})"


def _eq(self: object, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented  # type: ignore[no-any-return]
    return all(getattr(self, name) == getattr(other, name) for name in type(self).__record_names__)  # type: ignore[attr-defined]


def _hash(self: object) -> int:
    return hash(tuple(getattr(self, name) for name in type(self).__record_names__))  # type: ignore[attr-defined]


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _process(cls: type, frozen: bool) -> type:
    inherited: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        inherited.update(base.__dict__.get("__record_fields__", {}))
    for spec in _own_fields(cls):
        inherited[spec.name] = spec
    specs = list(inherited.values())
    _check_order(specs)
    cls.__record_fields__ = inherited  # type: ignore[attr-defined]
    cls.__record_names__ = tuple(spec.name for spec in specs)  # type: ignore[attr-defined]
    cls.__record_shown__ = tuple(spec.name for spec in specs if spec.repr)  # type: ignore[attr-defined]
    cls.__init__ = _generic_init(cls, specs, frozen)  # type: ignore[misc]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = _repr  # type: ignore[assignment,method-assign]
    if "__eq__" not in cls.__dict__:
        cls.__eq__ = _eq  # type: ignore[assignment,method-assign]
    if frozen:
        cls.__hash__ = _hash  # type: ignore[assignment,method-assign]
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment,method-assign]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment,method-assign]
    elif "__hash__" not in cls.__dict__:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable with value equality: unhashable
    return cls


@dataclass_transform(field_specifiers=(field, Field))
def record(cls: Any = None, /, *, frozen: bool = False) -> Any:
    """Make ``cls`` a record of its annotated fields (``@record`` or ``@record(frozen=True)``)."""
    def wrap(target: type) -> type:
        return _process(target, frozen)
    return wrap if cls is None else wrap(cls)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        return tuple(cls.__record_fields__.values())  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError(f"{cls.__qualname__} is not a record") from None


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` applied (``__post_init__`` runs again)."""
    values = {spec.name: getattr(obj, spec.name) for spec in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def _plain(value: object) -> object:
    if hasattr(type(value), "__record_fields__"):
        return {spec.name: _plain(getattr(value, spec.name)) for spec in fields(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    return value


def asdict(obj: object) -> dict[str, Any]:
    """The record ``obj`` as a dict, records inside it (and in lists, tuples, dicts) too."""
    if not hasattr(type(obj), "__record_fields__"):
        raise TypeError(f"{type(obj).__qualname__} is not a record")
    return _plain(obj)  # type: ignore[return-value]
