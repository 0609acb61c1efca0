#!/usr/bin/python3
"""particles.py: an agent-based epidemic (SIR) on a periodic unit square, in mpi4py.

Each rank owns a list of Agent objects (a dataclass: position, health from an enum, days
sick) and a numpy random generator. A parameter sweep over the infection radius runs in an
outer loop. Inside it, time steps start a new epidemic (step 0), move the agents, spread
the infection (a susceptible agent within the radius of an infected agent on any rank
catches it with probability --p) and let the sick recover. After each sweep an analysis
phase records the epidemic's peak, its final size and a bootstrap interval of the attack
rate; the report at the end prints them and
`result: <digest>` of the whole final state (agents of every rank, generators, results).

The 6 lines marked "# ckpt" make it resumable (those marked "# ckpt (optional)" print
where a resume starts; without all of them it is the plain program, with the same result): it restores the newest checkpoint,
re-enters the sweep and the time loop at the saved indices, skips an analysis that was
done, checkpoints every --every time steps and on SIGUSR1/SIGTERM or near a SLURM time
limit (then exits 75). The setup (creating the agents) makes the default state that a
restore replaces; the report after the loops runs again on a resume, on the restored
state. Rank 0 prints where a resume starts: `particles: restored <step> <position JSON>`.

  mpiexec -n 2 /usr/bin/python3 apps/particles.py --dir run --sweeps 3 --steps 40
"""

import argparse
import dataclasses
import enum
import hashlib
import json
import sys

import numpy as np
from mpi4py import MPI

import ckpt as ck  # ckpt


class Health(enum.Enum):
    SUSCEPTIBLE = "S"
    INFECTED = "I"
    RECOVERED = "R"


@dataclasses.dataclass
class Agent:
    x: float
    y: float
    health: Health = Health.SUSCEPTIBLE
    days_sick: int = 0


def setup(comm, n):
    """The default state: n agents per rank and a generator seeded by the rank."""
    rng = np.random.default_rng(2024 + comm.rank)
    agents = [Agent(float(x), float(y)) for x, y in rng.random((n, 2))]
    return {"agents": agents, "rng": rng, "peak": 0, "results": {}}


def new_epidemic(comm, state):
    rng = state["rng"]
    for i, a in enumerate(state["agents"]):
        a.x, a.y = (float(v) for v in rng.random(2))
        a.health = Health.INFECTED if comm.rank == 0 and i < 3 else Health.SUSCEPTIBLE
        a.days_sick = 0
    state["peak"] = 0


def step(comm, state, radius, p, sick_days):
    rng = state["rng"]
    agents = state["agents"]
    moves = rng.normal(0.0, 0.01, (len(agents), 2))
    for a, (dx, dy) in zip(agents, moves):
        a.x, a.y = (a.x + dx) % 1.0, (a.y + dy) % 1.0
    infected = [(a.x, a.y) for a in agents if a.health is Health.INFECTED]
    sources = np.array([xy for part in comm.allgather(infected) for xy in part]).reshape(-1, 2)
    draws = rng.random(len(agents))
    for a, u in zip(agents, draws):
        if a.health is Health.INFECTED:
            a.days_sick += 1
            if a.days_sick >= sick_days:
                a.health = Health.RECOVERED
        elif a.health is Health.SUSCEPTIBLE and len(sources):
            d = np.abs(sources - (a.x, a.y))
            d = np.minimum(d, 1.0 - d)  # periodic square
            if u < p and ((d ** 2).sum(axis=1) < radius ** 2).any():
                a.health = Health.INFECTED
    state["peak"] = max(state["peak"], comm.allreduce(sum(a.health is Health.INFECTED for a in agents)))


def analyze(comm, state, sweep, radius, resamples=20000):
    """The epidemic's peak, its final size and a bootstrap 90 % interval of the attack rate
    (the same resamples on every rank: a generator seeded by the sweep)."""
    ill = np.array([h for part in comm.allgather([a.health is Health.RECOVERED for a in state["agents"]])
                    for h in part], dtype=float)
    boot = np.random.default_rng(sweep).choice(ill, size=(resamples, ill.size)).mean(axis=1)
    lo, hi = np.quantile(boot, [0.05, 0.95])
    return {"radius": radius, "peak": state["peak"], "recovered": int(ill.sum()),
            "attack_rate": [float(lo), float(hi)]}


def report(comm, state):
    """The results, and a digest of the whole state gathered on rank 0."""
    mine = repr([(a.x, a.y, a.health.value, a.days_sick) for a in state["agents"]])
    mine += repr(state["rng"].bit_generator.state)
    parts = comm.gather(mine, root=0)
    if comm.rank == 0:
        for sweep, r in sorted(state["results"].items()):
            print(f"particles: sweep {sweep}: radius {r['radius']:.3f} peak {r['peak']} recovered "
                  f"{r['recovered']} (attack rate {r['attack_rate'][0]:.2f}-{r['attack_rate'][1]:.2f})")
        blob = ("".join(parts) + repr(sorted(state["results"].items()))).encode()
        print(f"result: {hashlib.blake2b(blob, digest_size=16).hexdigest()}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=100, help="agents per rank")
    ap.add_argument("--sweeps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="time steps per sweep")
    ap.add_argument("--p", type=float, default=0.3, help="infection probability per contact and step")
    ap.add_argument("--sick-days", type=int, default=8)
    ap.add_argument("--every", type=int, default=10, help="checkpoint every N time steps")
    ap.add_argument("--dir", default="particles-checkpoints")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD

    cp = ck.Checkpointer(comm, args.dir, every=args.every, exit_on_stop=True)  # ckpt
    state = cp.restore(setup(comm, args.agents))  # ckpt
    if comm.rank == 0 and cp.restored_step is not None:  # ckpt (optional)
        print(f"particles: restored {cp.restored_step} {json.dumps(cp.restored_position)}",  # ckpt (optional)
              file=sys.stderr, flush=True)  # ckpt (optional)
    for sweep in cp.loop("sweep", args.sweeps):  # ckpt
        radius = 0.02 + 0.01 * sweep
        for t in cp.loop("t", args.steps):  # ckpt
            if t == 0:
                new_epidemic(comm, state)
            step(comm, state, radius, args.p, args.sick_days)
        for _ in cp.phase("analysis"): state["results"][sweep] = analyze(comm, state, sweep, radius)  # noqa: E701  # ckpt
    report(comm, state)


if __name__ == "__main__":
    main()
