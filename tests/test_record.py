"""largezero._record: the part of dataclasses the package uses, checked on its own terms."""

from __future__ import annotations

import pickle

import pytest

from largezero._record import COMPILE_AFTER, FrozenInstanceError, asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    secret: str = field(default="s", repr=False)


@record
class Counter:
    name: str
    hits: int = 0


@record(frozen=True)
class Checked:
    size: int

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError("size must not be negative")


@record(frozen=True)
class Point3(Point):
    z: int = 0


@pytest.mark.parametrize("built", [0, COMPILE_AFTER + 5])
def test_both_inits_bind_arguments_like_a_dataclass(built: int) -> None:
    # The first instances are bound by hand, later ones by the compiled __init__: same results.
    for _ in range(built):
        Point(1)
    p = Point(1, 2, ["a"])
    assert (p.x, p.y, p.tags, p.secret) == (1, 2, ["a"], "s")
    assert Point(y=3, x=4) == Point(4, 3)
    assert Point(1).tags is not Point(1).tags  # a fresh default per instance
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, [], "s", 5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1, nope=2)  # type: ignore[call-arg]


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    p = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y  # type: ignore[misc]
    assert hash(Checked(3)) == hash(Checked(3))
    assert len({Checked(1), Checked(1), Checked(2)}) == 2
    with pytest.raises(TypeError):
        hash(Point(1))  # a list field: unhashable, as with dataclasses


def test_mutable_records_assign_compare_and_are_unhashable() -> None:
    c = Counter("a")
    c.hits += 1
    assert c == Counter("a", 1) and c != Counter("a", 2) and c != ("a", 1)
    with pytest.raises(TypeError):
        hash(c)


def test_repr_leaves_out_repr_false_fields() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[])"


def test_post_init_runs_on_construction_and_on_replace() -> None:
    with pytest.raises(ValueError):
        Checked(-1)
    assert replace(Checked(1), size=2) == Checked(2)
    with pytest.raises(ValueError):
        replace(Checked(1), size=-5)
    with pytest.raises(TypeError):
        replace(Checked(1), nope=3)


def test_subclasses_inherit_fields_in_order() -> None:
    assert [f.name for f in fields(Point3)] == ["x", "y", "tags", "secret", "z"]
    assert Point3(1, z=3).z == 3 and Point3(1) != Point(1)


def test_asdict_recurses_and_pickle_round_trips() -> None:
    @record(frozen=True)
    class Pair:
        a: Point
        more: tuple[Point, ...] = ()

    pair = Pair(Point(1), (Point(2, tags=["t"]),))
    assert asdict(pair) == {"a": {"x": 1, "y": 0, "tags": [], "secret": "s"},
                            "more": ({"x": 2, "y": 0, "tags": ["t"], "secret": "s"},)}
    assert pickle.loads(pickle.dumps(Point(7, 8))) == Point(7, 8)
    with pytest.raises(TypeError):
        asdict(object())


def test_a_required_field_after_a_default_is_refused() -> None:
    with pytest.raises(TypeError):
        @record
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]
