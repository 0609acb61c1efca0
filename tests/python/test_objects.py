"""Objects in a state: dataclasses, namedtuples, enums, sets, collections, datetime, paths,
Fraction, Decimal and registered classes round-trip through ck.save / ck.load nested to
depth, with types and identity structure (shared references, cycles) kept; unknown classes
are refused without importing or running anything; old (format 1) checkpoints load."""

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import json
import os
import pathlib
import shutil
import sys
import typing
import zoneinfo

import numpy as np
import pytest

import ckpt as ck
from ckpt import _objects

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass
class Particle:
    pos: np.ndarray
    vel: np.ndarray
    kind: "Kind"
    tags: set = dataclasses.field(default_factory=set)
    history: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Params:
    dt: float
    shape: tuple
    when: datetime.datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Key:
    a: int
    b: str


class Point(typing.NamedTuple):
    x: float
    y: float


Pair = collections.namedtuple("Pair", "left right")


class Kind(enum.Enum):
    GAS = "gas"
    SOLID = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2


@ck.saveable
class Agent:
    def __init__(self, name, rank):
        self.name = name
        self.friends = []
        self.rng = np.random.default_rng(rank)
        self.memory = np.full(3, float(rank))


@ck.saveable
class Slotted:
    __slots__ = ("a", "__hidden", "arr")

    def __init__(self, a):
        self.a = a
        self.__hidden = a * 2
        self.arr = np.arange(4) + a

    def hidden(self):
        return self.__hidden


@ck.saveable(name="tests.Custom")
class Custom:
    def __init__(self, v):
        self.v = v
        self.cache = "expensive"

    def __getstate__(self):
        return {"v": self.v}

    def __setstate__(self, st):
        self.v = st["v"]
        self.cache = "rebuilt"


def half():
    return 0.5


ck.register(half)


def same(a, b, where="state", seen=None):
    """Equal values of the same types, arrays bit for bit, objects by their attributes."""
    seen = {} if seen is None else seen
    if id(a) in seen:
        assert seen[id(a)] is b, f"{where}: identity structure differs"
        return
    if not isinstance(a, (int, float, str, bytes, type(None), enum.Enum)):
        seen[id(a)] = b
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, enum.Enum):
        assert a is b, f"{where}: {a!r} is not {b!r}"
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.random.Generator):
        assert a.bit_generator.state == b.bit_generator.state, where
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory, where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]", seen)
    elif isinstance(a, (list, tuple, collections.deque)):
        assert len(a) == len(b), where
        if isinstance(a, collections.deque):
            assert a.maxlen == b.maxlen, where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", seen)
    elif isinstance(a, (set, frozenset)):
        assert a == b, f"{where}: {a} != {b}"
    elif dataclasses.is_dataclass(a) or _objects.is_registered(type(a)):
        if hasattr(a, "__dict__"):
            same(vars(a), vars(b), f"{where}.__dict__", seen)
        for s in _objects._slot_names(type(a)):
            same(getattr(a, s), getattr(b, s), f"{where}.{s}", seen)
    elif isinstance(a, float) and a != a:
        assert b != b, where
    elif isinstance(a, decimal.Decimal):
        assert str(a) == str(b), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if isinstance(a, (float, decimal.Decimal)):
            assert repr(a) == repr(b), where   # -0.0, Decimal('-0.00')


def every_object(rank):
    gas = Kind.GAS
    p0 = Particle(np.arange(3.0) + rank, np.zeros(3), gas, {"hot", 3, (1, "x")})
    p1 = Particle(np.ones(2), np.full(2, -1.0), Kind.SOLID, set(), [Point(1.0, 2.0)])
    dd = collections.defaultdict(list)
    dd["a"].append(1)
    dd[(1, 2)].append(Key(1, "k"))
    return {
        "particles": [p0, p1],
        "params": Params(0.01 * (rank + 1), (4, 4), datetime.datetime(2024, 5, 6, 7, 8, 9, 10)),
        "keys": {Key(1, "a"): "one", Key(2, "b"): [Level.HIGH]},
        "named": [Point(0.5, -0.5), Pair(left={"x": 1}, right=[2])],
        "enums": [Kind.GAS, Kind.SOLID, Level.LOW, Perm.R, Perm.R | Perm.W],
        "sets": {"s": {1, 2, 3, 10 + rank}, "fs": frozenset({"a", frozenset({1})}), "empty": set()},
        "collections": {
            "deque": collections.deque([1, [2, 3]], maxlen=4),
            "odict": collections.OrderedDict([("z", 1), ("a", np.arange(2))]),
            "counter": collections.Counter("mississippi"),
            "dd": dd,
            "dd_half": collections.defaultdict(half, {"x": 1.0}),
            "dd_none": collections.defaultdict(None, {1: 2}),
        },
        "time": {
            "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
            "dt_off": datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(
                datetime.timedelta(hours=-5), "EST")),
            "dt_zone": datetime.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
            "date": datetime.date(2020, 2, 29), "time": datetime.time(23, 59, 1, 5),
            "td": datetime.timedelta(days=-1, seconds=5, microseconds=7),
        },
        "paths": [pathlib.Path("/tmp") / f"rank{rank}", pathlib.PurePosixPath("a/b"),
                  pathlib.PureWindowsPath(r"C:\x\y")],
        "numbers": [fractions.Fraction(1, 3 + rank), decimal.Decimal("-0.00"),
                    decimal.Decimal("NaN"), decimal.Decimal("1e-30"), 1 + 2j, complex(0, -0.0)],
        "custom": Custom(41 + rank),
        "slotted": Slotted(rank),
        "int_keys": {1: "one", 2: np.arange(3) * rank, "2": "string two"},
        # Nested to depth: dict -> list -> dataclass -> list -> namedtuple -> dict -> set
        "deep": {"l": [Particle(np.zeros(1), np.zeros(1), gas, {frozenset({Kind.GAS})},
                                [Pair({"s": {Level.LOW, (1, 2)}}, [Params(1.0, (), None)])])]},
    }


def test_roundtrip_every_object_type(comm, shared_dir):
    state = every_object(comm.rank)
    f = ck.save(comm, state, shared_dir)
    doc = json.loads(ck.checkpoint_info(f)["metadata"]["python_state"])
    assert doc["ckpt_python"] == 2
    got = ck.load(comm, shared_dir)
    state["custom"].cache = "rebuilt"   # what its __setstate__ does
    same(state, got)
    assert got["slotted"].hidden() == 2 * comm.rank
    assert got["custom"].v == 41 + comm.rank and got["custom"].cache == "rebuilt"
    assert got["collections"]["dd"]["new"] == [] and got["collections"]["dd_half"]["y"] == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        got["params"].dt = 1.0


def test_shared_references_and_cycles(comm, shared_dir):
    a, b = Agent("a", comm.rank), Agent("b", comm.rank)
    a.friends.append(b)
    b.friends += [a, b]                 # a cycle, and b refers to itself
    shared_list = [1, 2]
    arr = np.arange(5.0) + comm.rank
    rng = np.random.default_rng(7)
    t = ([],)
    t[0].append(t)                      # a cycle through a tuple
    d = {}
    d["self"] = d
    state = {"agents": [a, b], "again": a, "l1": shared_list, "l2": shared_list,
             "arr1": arr, "arr2": arr, "rng1": rng, "rng2": rng, "tuple_cycle": t, "d": d,
             "pairs": [Pair(shared_list, shared_list)]}
    f = ck.save(comm, state, shared_dir)
    names = [x["name"] for x in ck.checkpoint_info(f)["fields"]]
    assert "arr1" in names and "arr2" not in names     # an array met twice is stored once
    got = ck.load(comm, shared_dir)
    same(state, got)
    ga, gb = got["agents"]
    assert got["again"] is ga and ga.friends[0] is gb and gb.friends[0] is ga
    assert gb.friends[1] is gb
    assert got["l1"] is got["l2"] and got["pairs"][0].left is got["l1"]
    assert got["arr1"] is got["arr2"] and np.array_equal(got["arr1"], arr)
    assert got["rng1"] is got["rng2"] and got["rng1"].random() == np.random.default_rng(7).random()
    assert got["tuple_cycle"][0][0] is got["tuple_cycle"]
    assert got["d"]["self"] is got["d"]


def test_shared_reference_kept_when_like_skips_its_first_place(comm, shared_dir):
    shared = {"x": np.arange(3)}
    ck.save(comm, {"a": shared, "b": shared, "c": 1}, shared_dir)
    got = ck.load(comm, shared_dir, like={"b": None})
    assert list(got) == ["b"] and np.array_equal(got["b"]["x"], np.arange(3))


def test_plain_states_still_write_format_1(comm, shared_dir):
    f = ck.save(comm, {"u": np.zeros(3), "n": 1, "l": [1, (2,)], "t": ()}, shared_dir)
    doc = json.loads(ck.checkpoint_info(f)["metadata"]["python_state"])
    assert doc["ckpt_python"] == 1


def test_format_1_checkpoint_of_an_older_version_loads(comm, tmp_path):
    """A checkpoint written by the bindings before format 2 existed still loads exactly."""
    sys.path.insert(0, HERE)
    from format1_state import format1_state
    d = tmp_path / f"r{comm.rank}"
    d.mkdir()
    shutil.copy(os.path.join(HERE, "data", "format1", "ckpt-000000000007.h5"), d)
    from mpi4py import MPI
    got = ck.load(MPI.COMM_SELF, str(d))
    expect = format1_state()
    for k in ("gen", "rs", "random"):
        e, g = expect.pop(k), got.pop(k)
        assert type(e) is type(g)
        if k == "random":
            assert e.random() == g.random()
        else:
            assert e.random() == g.random()
    same(expect, got)


# --------------------------------------------------------------------------------------
# Unknown classes: refused by name, nothing imported, nothing run


class Plain:
    """Not registered: refused on save."""

    def __init__(self):
        self.x = 1


def test_unregistered_class_is_refused_on_every_rank_naming_the_key_path(comm, shared_dir):
    deep = {"a": [Particle(np.zeros(1), np.zeros(1), Kind.GAS, history=[{"c": Plain()}])]}
    if comm.size > 1 and comm.rank == 0:
        deep = {"a": [Particle(np.zeros(1), np.zeros(1), Kind.GAS, history=[{"c": 1}])]}
    with pytest.raises(ck.UnsupportedValueError) as e:
        ck.save(comm, deep, shared_dir)
    msg = str(e.value)
    assert "state['a'][0].history[0]['c']" in msg, msg
    assert "@ck.saveable" in msg and "ck.register" in msg and "Plain" in msg
    assert ck.list_checkpoints(shared_dir) == []


def test_defaultdict_with_a_lambda_is_refused(comm, shared_dir):
    with pytest.raises(ck.UnsupportedValueError) as e:
        ck.save(comm, {"d": {"x": collections.defaultdict(lambda: 0)}}, shared_dir)
    assert "state['d']['x']" in str(e.value) and "ck.register" in str(e.value)


def test_class_defined_in_a_function_must_be_registered(comm, shared_dir):
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(ck.UnsupportedValueError) as e:
        ck.save(comm, {"loc": Local(1)}, shared_dir)
    assert "state['loc']" in str(e.value) and "ck.register" in str(e.value)
    ck.register(Local, name="tests.Local")
    try:
        ck.save(comm, {"loc": Local(1)}, shared_dir)
        assert ck.load(comm, shared_dir)["loc"] == Local(1)
    finally:
        _objects.unregister(Local)


@ck.saveable
class Thing:
    def __init__(self, cmd):
        self.cmd = cmd


def test_unknown_class_name_is_refused_naming_key_and_class(comm, shared_dir):
    ck.save(comm, {"objs": [1, Thing("x")]}, shared_dir)
    _objects.unregister(Thing)
    try:
        with pytest.raises(ck.CheckpointError) as e:
            ck.load(comm, shared_dir)
    finally:
        ck.register(Thing)
    msg = str(e.value)
    assert "state['objs'][1]" in msg and "test_objects:Thing" in msg
    assert "@ck.saveable" in msg and "never imports" in msg


def crafted(comm, d, name, dataclass=False, tmp=None):
    """A checkpoint whose description names class `name` (written through a class
    registered under that name, then forgotten)."""
    if dataclass:
        @dataclasses.dataclass
        class Evil:
            cmd: str
        cls = Evil
    else:
        class Evil:
            def __init__(self, cmd):
                self.cmd = cmd
        cls = Evil
    ck.register(cls, name=name)
    try:
        ck.save(comm, {"x": {"y": cls(f"touch {tmp}")}}, d)
    finally:
        _objects.unregister(cls)


@pytest.mark.parametrize("name,dataclass", [("os:system", False), ("os:system", True),
                                            ("builtins:eval", True),
                                            ("ckpt_evil_module:Payload", True),
                                            ("subprocess:Popen", False)])
def test_crafted_class_names_run_and_import_nothing(comm, shared_dir, tmp_path, name, dataclass):
    marker = tmp_path / f"ran-{comm.rank}"
    crafted(comm, shared_dir, name, dataclass, marker)
    before = set(sys.modules)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir)
    assert "state['x']['y']" in str(e.value) and name in str(e.value)
    assert not marker.exists()
    assert "ckpt_evil_module" not in sys.modules
    assert set(sys.modules) - before == set()


def test_h5py_sees_arrays_in_objects_under_readable_names(comm, shared_dir):
    import h5py
    agents = [Agent(f"a{i}", comm.rank) for i in range(2)]
    f = ck.save(comm, {"particles": every_object(comm.rank)["particles"], "agents": agents,
                       "slotted": Slotted(comm.rank)}, shared_dir)
    comm.Barrier()
    kw = {"driver": "mpio", "comm": comm} if h5py.get_config().mpi else {}
    with h5py.File(f, "r", **kw) as h:
        names = set(h.keys())
        for n in ("particles.0.pos", "particles.0.vel", "particles.1.pos", "agents.0.memory",
                  "agents.1.memory", "slotted.arr"):
            assert n in names, sorted(names)
        assert np.array_equal(h["particles.0.pos"][...],
                              np.concatenate([np.arange(3.0) + r for r in range(comm.size)]))


def test_like_templates_reach_inside_objects(comm, shared_dir):
    a = Agent("a", comm.rank)
    a.grid = ck.Distributed(np.arange(4.0) + 4 * comm.rank, (4 * comm.rank,), (4 * comm.size,))
    ck.save(comm, {"a": a}, shared_dir)
    t = Agent("t", 99)
    t.memory[:] = -1.0
    buf = np.zeros(4)
    t.grid = ck.Distributed(buf, (4 * comm.rank,), (4 * comm.size,))
    got = ck.load(comm, shared_dir, like={"a": t})
    assert got["a"] is not t and got["a"].name == "a"
    assert got["a"].memory is t.memory and (t.memory == comm.rank).all()   # filled in place
    assert got["a"].grid is buf and np.array_equal(buf, np.arange(4.0) + 4 * comm.rank)
