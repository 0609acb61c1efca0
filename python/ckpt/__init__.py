"""ckpt: coordinated checkpoint/restart for mpi4py programs.

>>> import ckpt as ck
>>> state = ck.load(comm) or {"u": u0, "step": 0}
>>> ck.save(comm, state)

Checkpoints are parallel HDF5 files (one per checkpoint, readable with h5py and h5dump),
written atomically with checksums by the ckpt C++ core. A state is stored as data only
(never pickled): loading never runs code.
"""

from mpi4py import MPI as _MPI  # noqa: F401  (initialises MPI before the extension loads)

from . import _ckpt
from ._api import (EXIT_MORE_WORK, Checkpointer, Stopped, StopReason, checkpoint_info,
                   list_checkpoints, load, release, save, verify)
from ._errors import CheckpointError, UnsupportedValueError
from ._map import map
from ._objects import register, saveable
from ._state import Distributed, Grid, Replicated

__version__ = _ckpt.library_version()

xxh3_128 = _ckpt.xxh3_128  # XXH3-128 of a C-contiguous buffer, 32 hex digits (high64 first)


def add_arguments(parser, every: int = 0, dir: str = "checkpoints") -> None:
    """Adds ``--every N`` and ``--dir DIR`` to an argparse parser (as the C++ apps have)."""
    parser.add_argument("--every", type=int, default=every,
                        help="checkpoint every N steps (0: only on stop and at the end)")
    parser.add_argument("--dir", default=dir, help="checkpoint directory")


__all__ = [
    "save", "load", "release", "Distributed", "Grid", "Replicated", "Checkpointer", "StopReason", "map",
    "register", "saveable", "Stopped",
    "CheckpointError", "UnsupportedValueError", "list_checkpoints", "checkpoint_info",
    "verify", "xxh3_128", "add_arguments", "EXIT_MORE_WORK", "__version__",
]
