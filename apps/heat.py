#!/usr/bin/python3
"""heat.py: 2-D Jacobi heat equation (the benchpress heat_equation benchmark) in numpy and
mpi4py, block-decomposed over the ranks with halo exchange, made restartable with ckpt.

The interior grid is n x n cells, all 0.0 at the start; the fixed boundary is 40.0 on the
top edge and -273.15 on the other three. Each step every interior cell becomes
0.2 * (center + north + east + west + south), evaluated left to right exactly as the C++
solver (apps/heat/heat.cpp) does, so both print the same `result:` digest (XXH3-128 of the
final interior grid, float64, C order) for the same --n and --steps, on any rank count.

The lines marked "# ckpt" are all it takes to make the solver restartable: it resumes from
the newest valid checkpoint in --dir, saves every --every steps, and on SIGUSR1/SIGTERM or
near the job's time limit saves and exits with status 75 (more work left).

    mpiexec -n 4 /usr/bin/python3 apps/heat.py --n 512 --steps 1000 --every 100
"""

import argparse
import sys
import time

import numpy as np
from mpi4py import MPI

import ckpt as ck  # ckpt
from ckpt import xxh3_128  # the digest of the result (the C++ solver prints the same)


def split(n, parts, i):
    """Start and length of part i of n cells split into `parts` nearly equal parts."""
    base, rem = divmod(n, parts)
    return i * base + min(i, rem), base + (1 if i < rem else 0)


def main():
    p = argparse.ArgumentParser(description="2-D Jacobi heat equation, restartable with ckpt")
    p.add_argument("--n", type=int, default=512, help="interior grid is N x N cells")
    p.add_argument("--steps", type=int, default=1000, help="number of Jacobi steps")
    p.add_argument("--every", type=int, default=100, help="checkpoint every K steps (0: never)")
    p.add_argument("--dir", default="heat-checkpoints", help="checkpoint directory")
    args = p.parse_args()
    n = args.n

    comm = MPI.COMM_WORLD
    dims = MPI.Compute_dims(comm.size, 2)
    cart = comm.Create_cart(dims, periods=[False, False], reorder=False)
    cy, cx = cart.Get_coords(cart.rank)
    north, south = cart.Shift(0, 1)
    west, east = cart.Shift(1, 1)
    y0, ny = split(n, dims[0], cy)
    x0, nx = split(n, dims[1], cx)
    if ny == 0 or nx == 0:
        if comm.rank == 0:
            print(f"heat.py: grid {n} is too small for {comm.size} ranks", file=sys.stderr)
        comm.Abort(2)

    # Local grid with one ghost cell on each side; ghosts on the global edge hold the boundary.
    u = np.zeros((ny + 2, nx + 2))
    if west == MPI.PROC_NULL:
        u[:, 0] = -273.15
    if east == MPI.PROC_NULL:
        u[:, -1] = -273.15
    if south == MPI.PROC_NULL:
        u[-1, :] = -273.15
    if north == MPI.PROC_NULL:
        u[0, :] = 40.0
    col_out, col_in = np.empty(ny), np.empty(ny)

    cp = ck.Checkpointer(comm, args.dir, every=args.every, exit_on_stop=True)  # ckpt
    cp.restore({"u": ck.Distributed(u[1:-1, 1:-1], (y0, x0), (n, n), grid=ck.Grid())})  # ckpt

    t0 = time.perf_counter()
    for step in cp.steps(args.steps):  # ckpt
        # Halo exchange: rows north/south, columns west/east.
        cart.Sendrecv(u[1, 1:-1], north, 0, u[-1, 1:-1], south, 0)
        cart.Sendrecv(u[-2, 1:-1], south, 1, u[0, 1:-1], north, 1)
        col_out[:] = u[1:-1, 1]
        cart.Sendrecv(col_out, west, 2, col_in, east, 2)
        if east != MPI.PROC_NULL:
            u[1:-1, -1] = col_in
        col_out[:] = u[1:-1, -2]
        cart.Sendrecv(col_out, east, 3, col_in, west, 3)
        if west != MPI.PROC_NULL:
            u[1:-1, 0] = col_in
        u[1:-1, 1:-1] = 0.2 * (u[1:-1, 1:-1] + u[:-2, 1:-1] + u[1:-1, 2:] + u[1:-1, :-2]
                               + u[2:, 1:-1])
    wall = time.perf_counter() - t0

    # Gather the interior to rank 0 in global C order and hash it.
    blocks = comm.gather((y0, x0, np.ascontiguousarray(u[1:-1, 1:-1])), root=0)
    if comm.rank == 0:
        grid = np.empty((n, n))
        for by, bx, b in blocks:
            grid[by:by + b.shape[0], bx:bx + b.shape[1]] = b
        print(f"heat.py: n={n} steps={args.steps} ranks={comm.size} seconds={wall:.3f}")
        print(f"result: {xxh3_128(grid)}", flush=True)
    cart.Free()


if __name__ == "__main__":
    main()
