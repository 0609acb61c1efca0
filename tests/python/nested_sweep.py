#!/usr/bin/python3
"""A small object-oriented mpi4py particle program with phases and nested loops, for the
kill/resume tests (tests/python/test_nested_kill.py):

    setup phase -> for sweep in cp.loop("sweep", S):
                       init phase; for t in cp.loop("t", T): step; analysis phase
                -> final phase, then "result: <digest>" of every rank's particles

The state is a list of Particle instances (a dataclass holding numpy arrays and a shared
Species object), an enum, a dict of results keyed by sweep and a numpy RNG per rank.

Rank 0 prints "nested: restored <step|none> <position JSON>" after restore. With
NESTED_PAUSE=<label> ("setup", "init:<s>", "t:<s>:<t>", "analysis:<s>", "final") rank 0
stops in the middle of that step (after changing the state, before the step's collective)
and prints "nested: paused at <label>"; it goes on when the file NESTED_GO exists (never,
when unset: the test kills it there).
"""

import argparse
import dataclasses
import enum
import json
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import ckpt as ck


class Stage(enum.Enum):
    NEW = "new"
    WARM = "warm"
    DONE = "done"


@ck.saveable
class Species:
    def __init__(self, name, mass):
        self.name, self.mass = name, mass


@dataclasses.dataclass
class Particle:
    pos: np.ndarray
    vel: np.ndarray
    species: Species
    hits: int = 0


def pause_here(comm, label):
    if comm.rank != 0 or os.environ.get("NESTED_PAUSE") != label:
        return
    print(f"nested: paused at {label}", file=sys.stderr, flush=True)
    go = os.environ.get("NESTED_GO")
    while not (go and os.path.exists(go)):
        time.sleep(0.002)   # waits for the test; the test never waits on time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sweeps", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--every", type=int, default=4)
    p.add_argument("--dir", required=True)
    args = p.parse_args()
    comm = MPI.COMM_WORLD

    cp = ck.Checkpointer(comm, args.dir, every=args.every, keep=0, exit_on_stop=True)
    state = cp.restore({"particles": [], "rng": np.random.default_rng(100 + comm.rank),
                        "stage": Stage.NEW, "results": {}, "temperature": 0.0})
    if comm.rank == 0:
        print(f"nested: restored {cp.restored_step if cp.restored_step is not None else 'none'} "
              f"{json.dumps(cp.restored_position, sort_keys=True)}", file=sys.stderr, flush=True)

    for _ in cp.phase("setup"):
        rng = state["rng"]
        argon = Species("argon", 39.9)
        state["particles"] = [Particle(rng.random(3), np.zeros(3), argon) for _ in range(6)]
        pause_here(comm, "setup")
        comm.Barrier()

    for sweep in cp.loop("sweep", args.sweeps):
        for _ in cp.phase("init"):
            state["temperature"] = 0.5 + 0.25 * sweep
            state["stage"] = Stage.WARM
            for q in state["particles"]:
                q.vel[:] = state["rng"].normal(0.0, state["temperature"], 3)
            pause_here(comm, f"init:{sweep}")
            comm.Barrier()
        for t in cp.loop("t", args.steps):
            rng = state["rng"]
            for q in state["particles"]:
                q.vel += rng.normal(0.0, 0.1, 3) / q.species.mass
                q.pos += 0.01 * q.vel
                out = (q.pos < 0) | (q.pos > 1)
                q.vel[out] *= -1.0
                q.hits += int(out.sum())
            pause_here(comm, f"t:{sweep}:{t}")
            energy = sum(0.5 * q.species.mass * float(q.vel @ q.vel) for q in state["particles"])
            comm.allreduce(energy)   # a collective in every step, as in a real simulation
        for _ in cp.phase("analysis"):
            energy = sum(0.5 * q.species.mass * float(q.vel @ q.vel) for q in state["particles"])
            state["results"][sweep] = comm.allreduce(energy)
            pause_here(comm, f"analysis:{sweep}")
            comm.Barrier()

    for _ in cp.phase("final"):
        state["stage"] = Stage.DONE
        pause_here(comm, "final")
        comm.Barrier()

    parts = b"".join(q.pos.tobytes() + q.vel.tobytes() + q.hits.to_bytes(8, "little")
                     for q in state["particles"])
    parts += repr(sorted(state["results"].items())).encode() + state["stage"].value.encode()
    parts += repr(state["rng"].bit_generator.state).encode()
    shared = all(q.species is state["particles"][0].species for q in state["particles"])
    blobs = comm.gather(parts, root=0)
    if comm.rank == 0:
        digest = ck.xxh3_128(np.frombuffer(b"".join(blobs), dtype=np.uint8))
        print(f"nested: steps={cp.step} shared_species={shared}")
        print(f"result: {digest}", flush=True)
    cp.close()


if __name__ == "__main__":
    main()
