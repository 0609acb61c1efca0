"""The state stored in tests/python/data/format1/ckpt-000000000007.h5, a checkpoint written
by the Python bindings before objects were supported (description format 1), so that the
test can check that such checkpoints still load exactly."""

import random

import numpy as np


def format1_state():
    r = random.Random(5)
    r.random()
    g = np.random.default_rng(3)
    g.random(4)
    return {
        "int": 7, "big": 2**100, "float": 0.1, "nan": float("nan"), "negzero": -0.0,
        "bool": True, "complex": 1.5 - 2j, "str": "héllo", "bytes": b"\x00\xff",
        "bytearray": bytearray(b"ab"), "none": None,
        "list": [1, "two", [3.0, None]], "tuple": (1, (2, "x"), ()),
        "nested": {"a": {"b": [0, {"d": "deep"}]}},
        "np_scalars": [np.float32(1.25), np.int16(-7), np.complex64(1 + 2j)],
        "arrays": {dt: np.arange(6, dtype=dt).reshape(2, 3) for dt in ["u1", "i4", "f4", "f8"]},
        "bool_arr": np.array([True, False]), "c128": np.array([1j, 2.0]),
        "datetime": np.array(["2024-01-01"], dtype="datetime64[D]"),
        "empty": np.zeros((0, 2)), "key with spaces": 1, "_x41": 3,
        "rep": {"params": np.array([1.0, 2.0]), "n": 100},
        "gen": g, "rs": np.random.RandomState(4), "random": r,
    }
