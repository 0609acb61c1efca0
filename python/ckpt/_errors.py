"""ckpt.CheckpointError: the one exception type of the Python bindings."""

from __future__ import annotations

#: Error codes of the C++ core (ckpt::Errc); the numbers are part of the C API.
ERRC = {
    "ok": 0,
    "invalid_argument": 1,
    "io": 2,
    "no_space": 3,
    "hdf5": 4,
    "mpi": 5,
    "corrupt": 6,
    "unsupported_version": 7,
    "mismatch": 8,
    "rank_count": 9,
    "missing_field": 10,
    "no_valid_checkpoint": 11,
    "locked": 12,
    "remote": 13,
    "internal": 14,
    "restart_limit": 15,
}


class CheckpointError(Exception):
    """A ckpt operation failed.

    ``str(err)`` is the core's message (``ckpt[rank 3] restore: checksum mismatch ...``);
    ``code`` is the short name of the error category (``"corrupt"``, ``"rank_count"``, ...),
    ``code_value`` its number (ckpt::Errc), ``rank`` the rank where it happened first
    (-1 when not known) and ``detail`` the message without the rank prefix.
    After a collective call every rank raises the same error.
    """

    def __init__(self, message: str, code: str = "internal", code_value: int | None = None,
                 rank: int = -1, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.code_value = ERRC.get(code, ERRC["internal"]) if code_value is None else code_value
        self.rank = rank
        self.detail = message if detail is None else detail

    def __reduce__(self):
        return (type(self), (self.message, self.code, self.code_value, self.rank, self.detail))


class UnsupportedValueError(CheckpointError, TypeError):
    """A value in the state cannot be stored as data (a function, an open file, a
    communicator, ...). The message names the key."""


def make_error(code: str, rank: int, detail: str, cls=CheckpointError) -> CheckpointError:
    prefix = f"ckpt[rank {rank}] " if rank >= 0 else "ckpt: "
    return cls(prefix + detail, code, ERRC.get(code, ERRC["internal"]), rank, detail)
