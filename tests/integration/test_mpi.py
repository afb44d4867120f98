"""A real MPI program (Debian's MPICH) across two brokers x two tasks: MPI_Init
finds its peers through the job shells' PMI-1 and the exchange at rank 0."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import Instance

MPICC = shutil.which("mpicc.mpich")

PROGRAM = r"""
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int rank, size, sum = 0, got = -1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int mine = rank + 1;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    /* a ring: each rank passes its number to the next, across nodes */
    MPI_Sendrecv(&rank, 1, MPI_INT, (rank + 1) % size, 0,
                 &got, 1, MPI_INT, (rank + size - 1) % size, 0,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("hello from rank %d of %d on %s: sum %d, from %d\n", rank, size,
           getenv("STRATO_URI"), sum, got);
    MPI_Finalize();
    return 0;
}
"""


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    if MPICC is None:
        pytest.skip("MPICH is not installed (mpicc.mpich; make test installs Debian's "
                    "mpich and libmpich-dev with apt where it can)")
    d = tmp_path_factory.mktemp("mpi")
    (d / "hello.c").write_text(PROGRAM)
    subprocess.run([MPICC, "-o", str(d / "hello"), str(d / "hello.c")], check=True,
                   timeout=120)
    return d / "hello"


def test_mpi_across_two_brokers(tmp_path, hello):
    inst = Instance(tmp_path, args=("--test-size=2",))
    try:
        res = inst.strato("run", "-N2", "-n4", str(hello), timeout=120, check=True)
    finally:
        inst.stop()
    lines = sorted(res.stdout.splitlines())
    assert len(lines) == 4, res.stdout + res.stderr
    uris = set()
    for rank, line in enumerate(lines):
        words = line.split()
        assert words[:6] == ["hello", "from", "rank", str(rank), "of", "4"]
        assert line.endswith(f"sum 10, from {(rank + 3) % 4}")
        uris.add(words[7])
    assert len(uris) == 2  # two tasks on each broker


def test_mpi_in_a_child_of_two_brokers(tmp_path, hello):
    """Under strato under strato: the child's brokers came up through PMI, and its
    own job shells serve PMI to the MPI program again."""
    inst = Instance(tmp_path, args=("--test-size=2",))
    try:
        res = inst.strato("run", "-N2", "strato", "start", "strato", "run", "-N2", "-n4",
                          str(hello), timeout=180, check=True)
    finally:
        inst.stop()
    lines = sorted(res.stdout.splitlines())
    assert [line.split()[3] for line in lines] == ["0", "1", "2", "3"], res.stdout
    assert all(line.endswith(f", from {(i + 3) % 4}") and "sum 10" in line
               for i, line in enumerate(lines))
