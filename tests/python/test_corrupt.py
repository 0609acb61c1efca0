"""A damaged checkpoint is detected and the next older one is used."""

import os

import numpy as np
import pytest

import ckpt as ck


def dataset_offset(file, name):
    """Byte offset of a contiguous dataset in the file (read with h5py on one rank)."""
    import h5py
    with h5py.File(file, "r", driver=None) as f:
        return f[name].id.get_offset()


def flip_bytes(path, offset, n=8):
    with open(path, "r+b") as f:
        f.seek(offset)
        data = bytearray(f.read(n))
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))
        f.flush()
        os.fsync(f.fileno())


def make_two(comm, d):
    n = comm.size
    for step, scale in ((1, 1.0), (2, 2.0)):
        local = np.full((3, 4), scale * (comm.rank + 1))
        ck.save(comm, {"u": ck.Distributed(local, (3 * comm.rank, 0), (3 * n, 4)), "scale": scale},
                d, step=step)
    return os.path.join(d, "ckpt-000000000002.h5")


def corrupt(comm, file):
    if comm.rank == 0:
        flip_bytes(file, dataset_offset(file, "u") + 16)
    comm.Barrier()


def test_corrupt_newest_falls_back_to_older(comm, shared_dir, capfd):
    newest = make_two(comm, shared_dir)
    corrupt(comm, newest)
    if comm.rank == 0:
        report = ck.verify(newest)
        assert not report["ok"] and "checksum" in report["reason"]
    comm.Barrier()
    got = ck.load(comm, shared_dir)
    assert got["scale"] == 1.0
    assert np.array_equal(got["u"], np.full((3, 4), 1.0 * (comm.rank + 1)))
    # The damaged file is set aside and never listed again.
    assert [s for s, _ in ck.list_checkpoints(shared_dir)] == [1]
    if comm.rank == 0:
        assert os.path.exists(newest + ".corrupt")
        assert "skipping" in capfd.readouterr().err


def test_corrupt_requested_step_raises(comm, shared_dir):
    newest = make_two(comm, shared_dir)
    corrupt(comm, newest)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir, step=2)
    assert e.value.code == "corrupt" and "checksum" in str(e.value)


def test_truncated_file_falls_back(comm, shared_dir):
    newest = make_two(comm, shared_dir)
    if comm.rank == 0:
        size = os.path.getsize(newest)
        os.truncate(newest, size // 2)
    comm.Barrier()
    assert ck.load(comm, shared_dir)["scale"] == 1.0


def test_all_corrupt_raises(comm, shared_dir):
    newest = make_two(comm, shared_dir)
    corrupt(comm, newest)
    corrupt(comm, os.path.join(shared_dir, "ckpt-000000000001.h5"))
    with pytest.raises(ck.CheckpointError) as e:
        ck.load(comm, shared_dir)
    assert e.value.code == "no_valid_checkpoint"
