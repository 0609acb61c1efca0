"""Objects in a Python state, stored as data: which classes may be saved and how they are
found again on load.

* dataclasses (frozen too), namedtuples and enum members are supported as they are;
* any other class opts in with ``@ck.saveable`` or ``ck.register(cls)`` and is stored by
  its ``__getstate__``/``__setstate__``, or else by its ``__dict__`` and ``__slots__``;
* a ``collections.defaultdict`` is stored with the name of its ``default_factory``: a
  built-in type (``list``, ``int``, ...) or a class or function given to ``ck.register``.

The file records a class by its name (``module:qualname``, or the name given to
``register``). On load a name is looked up among the registered classes; a dataclass,
namedtuple or enum may also be found in a module that the program has *already imported*
(``sys.modules``, through the modules' and classes' ``__dict__`` only). Nothing is ever
imported and no name from the file is called unless it resolved to a registered class or
factory, or to a class of the kind the file says it is.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import pathlib
import sys

from ._errors import UnsupportedValueError, make_error

_CLASSES: dict[str, type] = {}       # name -> registered class
_FUNCS: dict[str, object] = {}       # name -> registered function (defaultdict factories)
_NAME_OF: dict[object, str] = {}     # registered class or function -> its name

# Factories a defaultdict may name without registering anything.
_BUILTIN_FACTORIES = {f"{f.__module__}:{f.__qualname__}": f for f in (
    int, float, complex, bool, str, bytes, bytearray, list, dict, set, frozenset, tuple,
    collections.Counter, collections.OrderedDict, collections.deque,
    collections.defaultdict)}

_PATHS = {c.__name__: c for c in (pathlib.PurePosixPath, pathlib.PureWindowsPath,
                                  pathlib.PosixPath, pathlib.WindowsPath)}


def default_name(obj) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def register(obj=None, *, name: str | None = None):
    """Makes a class saveable (``ck.register(MyClass)``), or registers a named function
    that a ``collections.defaultdict`` in the state uses as its ``default_factory``.

    ``name`` is the name recorded in checkpoints (default ``module:qualname``); give one to
    keep old checkpoints loadable when the class moves to another module. A class is saved
    through its ``__getstate__``/``__setstate__`` when it defines them, else by its
    ``__dict__`` and ``__slots__``; on load it is created with ``cls.__new__(cls)`` (its
    ``__init__`` is not called). Returns ``obj``.
    """
    if obj is None:  # used as @ck.register(name=...)
        return lambda o: register(o, name=name)
    if not callable(obj):
        raise TypeError(f"ckpt.register: expected a class or a function, got {type(obj).__name__}")
    key = name if name is not None else default_name(obj)
    if not isinstance(key, str) or not key:
        raise ValueError("ckpt.register: name must be a non-empty str")
    table = _CLASSES if isinstance(obj, type) else _FUNCS
    old = table.get(key)
    if old is not None and old is not obj and default_name(old) != default_name(obj):
        raise ValueError(f"ckpt.register: the name {key!r} is already taken by {default_name(old)}")
    if old is not None:
        _NAME_OF.pop(old, None)
    table[key] = obj
    _NAME_OF[obj] = key
    return obj


def saveable(cls=None, *, name: str | None = None):
    """Class decorator: ``@ck.saveable`` or ``@ck.saveable(name="stable.Name")``; the same
    as ``ck.register(cls)``."""
    if cls is None:
        return lambda c: register(c, name=name)
    if not isinstance(cls, type):
        raise TypeError("ckpt.saveable decorates a class")
    return register(cls, name=name)


def unregister(obj) -> None:
    """Forgets a class or function given to ``register`` (mainly for tests)."""
    key = _NAME_OF.pop(obj, None)
    if key is not None:
        _CLASSES.pop(key, None)
        _FUNCS.pop(key, None)


# --------------------------------------------------------------------------------------
# Kinds of objects


def is_namedtuple(value) -> bool:
    t = type(value)
    return isinstance(value, tuple) and t is not tuple and isinstance(getattr(t, "_fields", None),
                                                                       tuple)


def is_enum_member(value) -> bool:
    return isinstance(type(value), enum.EnumMeta)


def is_dataclass_instance(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def is_registered(cls) -> bool:
    return cls in _NAME_OF and isinstance(cls, type)


def _walk(module: str, qualname: str):
    """The object named module:qualname among the modules already imported, looked up in
    the modules' and classes' __dict__ only (no import, no __getattr__, no descriptor)."""
    mod = sys.modules.get(module)
    if mod is None or "<" in qualname:
        return None
    obj = mod
    for part in qualname.split("."):
        try:
            obj = vars(obj).get(part)
        except TypeError:
            return None
        if obj is None:
            return None
    return obj


def _kind_ok(cls, kind: str) -> bool:
    if not isinstance(cls, type):
        return False
    if kind == "dataclass":
        return dataclasses.is_dataclass(cls)
    if kind == "namedtuple":
        return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)
    if kind == "enum":
        return isinstance(cls, enum.EnumMeta)
    return False


_HOW = ("decorate the class with @ck.saveable (or call ck.register(cls)) in the program "
        "before it loads")


def name_for_save(cls, kind: str, where: str) -> str:
    """The name to record for a class of `kind` ("dataclass", "namedtuple", "enum" or
    "class"); raises when loading could not find it again."""
    name = _NAME_OF.get(cls)
    if name is not None and isinstance(cls, type):
        return name
    name = default_name(cls)
    if kind != "class" and ":" not in cls.__module__:
        if _walk(cls.__module__, cls.__qualname__) is cls:
            return name
        raise make_error(
            "invalid_argument", -1,
            f"save: {where} is a {kind} of class {name}, which could not be found by its name "
            f"when loading (defined inside a function, or replaced since); {_HOW}, giving it "
            "a name with ck.register(cls, name=...) if needed", UnsupportedValueError)
    raise make_error("invalid_argument", -1, f"save: {where} has class {name}: {_HOW}",
                     UnsupportedValueError)


def find_class(name, kind: str, where: str, file: str):
    """The class recorded as `name` in a checkpoint, or a clear error (never an import)."""
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is not None:
        if kind != "class" and not _kind_ok(cls, kind):
            raise make_error("mismatch", -1,
                             f"load: {where} is a {kind} of class {name!r} in {file}, but the "
                             f"registered class {default_name(cls)} is not a {kind}")
        return cls
    if isinstance(name, str) and kind != "class" and name.count(":") == 1:
        module, qualname = name.split(":")
        cls = _walk(module, qualname)
        if cls is not None and _kind_ok(cls, kind):
            return cls
        if cls is not None:
            raise make_error(
                "mismatch", -1,
                f"load: {where} is recorded in {file} as a {kind} of class {name!r}, but "
                f"{module}.{qualname} is not a {kind}; ckpt never calls a name from a "
                "checkpoint that is not a registered class")
    raise make_error(
        "missing_field", -1,
        f"load: {where} is an object of class {name!r} in {file}, which is not a registered "
        f"class{' (nor a ' + kind + ' of a module the program imported)' if kind != 'class' else ''}; "
        f"{_HOW}. ckpt never imports a module named in a checkpoint.")


def factory_name(f, where: str) -> str | None:
    if f is None:
        return None
    name = _NAME_OF.get(f)
    if name is not None:
        return name
    for n, g in _BUILTIN_FACTORIES.items():
        if g is f:
            return n
    what = getattr(f, "__qualname__", None) or type(f).__name__
    raise make_error(
        "invalid_argument", -1,
        f"save: {where} is a defaultdict whose default_factory ({what}) is not registered: use "
        "a type such as list or int, a class registered with ck.register, or a named function "
        "registered with ck.register(fn)", UnsupportedValueError)


def find_factory(name, where: str, file: str):
    if name is None:
        return None
    f = _BUILTIN_FACTORIES.get(name) if isinstance(name, str) else None
    if f is None and isinstance(name, str):
        f = _FUNCS.get(name) or _CLASSES.get(name)
    if f is None:
        raise make_error(
            "missing_field", -1,
            f"load: {where} is a defaultdict whose factory {name!r} (in {file}) is not "
            "registered; call ck.register(fn) before loading")
    return f


# --------------------------------------------------------------------------------------
# Object state


def _slot_names(cls) -> list[str]:
    names = []
    for c in cls.__mro__:
        slots = c.__dict__.get("__slots__")
        if slots is None:
            continue
        if isinstance(slots, str):
            slots = (slots,)
        for s in slots:
            if s in ("__dict__", "__weakref__"):
                continue
            if s.startswith("__") and not s.endswith("__"):
                s = f"_{c.__name__.lstrip('_')}{s}"
            if s not in names:
                names.append(s)
    return names


_OBJECT_GETSTATE = getattr(object, "__getstate__", None)


def custom_getstate(cls) -> bool:
    gs = getattr(cls, "__getstate__", None)
    return gs is not None and gs is not _OBJECT_GETSTATE


def object_state(obj):
    """("st", state from __getstate__) or ("attrs", __dict__ or None, {slot: value})."""
    cls = type(obj)
    if custom_getstate(cls):
        return ("st", obj.__getstate__())
    d = getattr(obj, "__dict__", None)
    slots = {}
    for s in _slot_names(cls):
        try:
            slots[s] = object.__getattribute__(obj, s)
        except AttributeError:
            pass
    return ("attrs", d, slots)


def new_object(cls, where: str):
    try:
        return cls.__new__(cls)
    except Exception as e:  # noqa: BLE001
        raise make_error("mismatch", -1, f"load: {where}: {default_name(cls)}.__new__(cls) "
                         f"failed ({type(e).__name__}: {e}); give the class a __new__ that "
                         "takes no arguments, or store its data in a saveable class") from None


def set_state(obj, state, where: str):
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    if isinstance(state, tuple) and len(state) == 2:
        d, slots = state
    else:
        d, slots = state, None
    if d:
        if not isinstance(d, dict):
            raise make_error("mismatch", -1, f"load: {where}: the saved state of "
                             f"{default_name(type(obj))} is not a dict and the class has no "
                             "__setstate__")
        obj.__dict__.update(d)
    for k, v in (slots or {}).items():
        object.__setattr__(obj, k, v)


def set_attrs(obj, d, slots):
    if d:
        obj.__dict__.update(d)
    for k, v in (slots or {}).items():
        object.__setattr__(obj, k, v)


# --------------------------------------------------------------------------------------
# Plain values of the standard library (leaves of the tree)


def encode_tz(tz, where):
    if tz is None:
        return None
    if isinstance(tz, datetime.timezone):
        off = tz.utcoffset(None)
        name = tz.tzname(None)
        default = datetime.timezone(off).tzname(None)
        return ["fixed", off.days, off.seconds, off.microseconds,
                None if name == default else name]
    key = getattr(tz, "key", None)
    if type(tz).__module__ == "zoneinfo" and isinstance(key, str):
        return ["zone", key]
    raise make_error("invalid_argument", -1,
                     f"save: {where} has a tzinfo of type {type(tz).__qualname__}; supported: "
                     "None, datetime.timezone and zoneinfo.ZoneInfo", UnsupportedValueError)


def decode_tz(enc):
    if enc is None:
        return None
    if enc[0] == "fixed":
        off = datetime.timedelta(days=int(enc[1]), seconds=int(enc[2]),
                                 microseconds=int(enc[3]))
        return datetime.timezone(off) if enc[4] is None else datetime.timezone(off, str(enc[4]))
    if enc[0] == "zone":
        import zoneinfo
        return zoneinfo.ZoneInfo(str(enc[1]))
    raise make_error("corrupt", -1, f"unknown time zone {enc!r} in the state description")


def encode_plain(value, where):
    """(node, encoded value) for a standard-library value stored inline, or None."""
    t = type(value)
    if t is datetime.datetime:
        return {"t": "datetime"}, [value.year, value.month, value.day, value.hour,
                                   value.minute, value.second, value.microsecond, value.fold,
                                   encode_tz(value.tzinfo, where)]
    if t is datetime.date:
        return {"t": "date"}, [value.year, value.month, value.day]
    if t is datetime.time:
        return {"t": "time"}, [value.hour, value.minute, value.second, value.microsecond,
                               value.fold, encode_tz(value.tzinfo, where)]
    if t is datetime.timedelta:
        return {"t": "timedelta"}, [value.days, value.seconds, value.microseconds]
    if t is fractions.Fraction:
        return {"t": "fraction"}, [value.numerator, value.denominator]
    if t is decimal.Decimal:
        return {"t": "decimal"}, str(value)
    if t.__name__ in _PATHS and _PATHS[t.__name__] is t:
        return {"t": "path", "kind": t.__name__}, str(value)
    return None


PLAIN_TYPES = frozenset((datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
                         fractions.Fraction, decimal.Decimal, *_PATHS.values()))

PLAIN_TAGS = ("datetime", "date", "time", "timedelta", "fraction", "decimal", "path", "enum")


def decode_plain(node, enc, find):
    t = node["t"]
    if t == "datetime":
        y, mo, d, h, mi, s, us, fold, tz = enc
        return datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(us),
                                 tzinfo=decode_tz(tz), fold=int(fold))
    if t == "date":
        return datetime.date(int(enc[0]), int(enc[1]), int(enc[2]))
    if t == "time":
        h, mi, s, us, fold, tz = enc
        return datetime.time(int(h), int(mi), int(s), int(us), tzinfo=decode_tz(tz),
                             fold=int(fold))
    if t == "timedelta":
        return datetime.timedelta(days=int(enc[0]), seconds=int(enc[1]),
                                  microseconds=int(enc[2]))
    if t == "fraction":
        return fractions.Fraction(int(enc[0]), int(enc[1]))
    if t == "decimal":
        return decimal.Decimal(str(enc))
    if t == "path":
        cls = _PATHS.get(node.get("kind"))
        if cls is None:
            raise make_error("corrupt", -1, f"unknown path class {node.get('kind')!r}")
        try:
            return cls(str(enc))
        except NotImplementedError:  # a WindowsPath on POSIX (or the reverse)
            return (pathlib.PureWindowsPath if "Windows" in cls.__name__
                    else pathlib.PurePosixPath)(str(enc))
    if t == "enum":
        cls = find(node.get("cls"), "enum")
        if isinstance(enc, list):   # a member without a name of its own (Flag combination)
            return cls(enc[0])
        try:
            return cls[str(enc)]
        except KeyError:
            raise make_error("mismatch", -1, f"enum {default_name(cls)} has no member "
                             f"{enc!r}") from None
    raise make_error("corrupt", -1, f"unknown value tag {t!r} in the state description")


def sort_key(x) -> str:
    """A key that orders the elements of a set the same way in every process (set order
    depends on the hash seed, which differs between ranks)."""
    t = type(x)
    if t is tuple or is_namedtuple(x):
        return f"{default_name(t)}:(" + ",".join(sort_key(e) for e in x) + ")"
    if t in (frozenset, set):
        return f"{default_name(t)}:{{" + ",".join(sorted(sort_key(e) for e in x)) + "}"
    if is_enum_member(x):
        return f"{default_name(t)}:{x.name}"
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001
        r = ""
    return f"{default_name(t)}:{r}"


__all__ = ["register", "saveable", "unregister"]
