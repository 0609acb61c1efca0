"""Random number generators: the state is saved, so a resumed run draws the same numbers."""

import random

import numpy as np
import pytest

import ckpt as ck

BITGENS = ["PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"]


def make_rngs(rank):
    rngs = {name: np.random.Generator(getattr(np.random, name)(1234 + rank)) for name in BITGENS}
    rngs["default"] = np.random.default_rng([rank, 99])
    rngs["legacy"] = np.random.RandomState(7 + rank)
    rngs["py"] = random.Random(f"seed-{rank}")
    return rngs


def draw(rngs, n=50):
    out = {}
    for k, g in rngs.items():
        if isinstance(g, random.Random):
            out[k] = [g.random() for _ in range(n)] + [g.gauss(0, 1) for _ in range(3)] + [g.getrandbits(77)]
        elif isinstance(g, np.random.RandomState):
            out[k] = np.concatenate([g.random_sample(n), g.standard_normal(3)]).tolist()
        else:
            out[k] = np.concatenate([g.random(n), g.standard_normal(3), g.integers(0, 2**40, 5)]).tolist()
    return out


def test_rng_streams_identical_after_restore(comm, shared_dir):
    rngs = make_rngs(comm.rank)
    draw(rngs, 17)                          # advance: the state is not the seed state
    rngs["py"].gauss(0, 1)                  # leaves a cached gauss value (gauss_next)
    rngs["legacy"].standard_normal()        # odd number of normals: a cached gauss
    rngs["PCG64"].integers(0, 2**31)        # leaves a buffered 32-bit half
    ck.save(comm, {"rngs": rngs}, shared_dir)
    expected = draw(rngs)                   # what the uninterrupted run draws next
    got = ck.load(comm, shared_dir)["rngs"]
    assert set(got) == set(rngs)
    for k, g in got.items():
        assert type(g) is type(rngs[k])
    assert draw(got) == expected
    # Ranks had different seeds and keep different streams.
    allv = comm.allgather(expected["PCG64"][0])
    assert len(set(allv)) == comm.size


def test_rng_in_checkpointer_loop(comm, shared_dir):
    def run(stop_at=None):
        cp = ck.Checkpointer(comm, shared_dir, every=1, keep=0)
        st = cp.restore({"rng": np.random.default_rng(comm.rank), "acc": 0.0,
                         "py": random.Random(comm.rank)})
        for step in cp.steps(10):
            st["acc"] += st["rng"].random() + st["py"].random()
            if stop_at is not None and step == stop_at:
                break  # a crash after the checkpoint of step `stop_at`
        cp.close()
        return st["acc"]

    run(stop_at=4)   # checkpoints of steps 1..4 exist (the one after step 4 never happened)
    resumed = run()
    import shutil
    if comm.rank == 0:
        shutil.rmtree(shared_dir)
    comm.Barrier()
    uninterrupted = run()
    assert resumed == uninterrupted


def test_system_random_is_refused(comm, shared_dir):
    with pytest.raises(ck.CheckpointError) as e:
        ck.save(comm, {"sysrng": random.SystemRandom()}, shared_dir)
    assert "sysrng" in str(e.value)
