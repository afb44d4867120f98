"""The shell host's outbox: messages kept until the broker records them, spilled to a
file past a memory bound, replayed in order from any sequence."""

from __future__ import annotations

from strato.shell.outbox import Outbox


def payload(seq: int) -> bytes:
    return f"message {seq} ".encode() * 10


def test_kept_in_memory_until_acknowledged(tmp_path):
    box = Outbox(str(tmp_path / "spool"), memory_limit=1 << 20)
    for seq in range(1, 6):
        box.add(seq, payload(seq))
    assert [s for s, _ in box.after(0)] == [1, 2, 3, 4, 5]
    box.ack(3)
    assert [(s, p) for s, p in box.after(0)] == [(4, payload(4)), (5, payload(5))]
    assert [s for s, _ in box.after(4)] == [5]
    box.ack(2)  # an older ack changes nothing
    assert [s for s, _ in box.after(0)] == [4, 5]
    box.ack(5)
    assert box.empty and not (tmp_path / "spool").exists()


def test_spills_past_the_bound_and_replays_in_order(tmp_path):
    spool = tmp_path / "spool"
    box = Outbox(str(spool), memory_limit=1000)
    for seq in range(1, 101):
        box.add(seq, payload(seq))
    assert spool.exists() and not box.memory  # everything went to the file, in order
    assert [(s, p) for s, p in box.after(0)] == [(s, payload(s)) for s in range(1, 101)]
    assert [s for s, _ in box.after(57)] == list(range(58, 101))
    assert list(box.after(100)) == []
    box.ack(60)  # part of the file: it stays until all of it is acknowledged
    assert spool.exists() and [s for s, _ in box.after(0)][:1] == [1]
    box.ack(100)
    assert box.empty and not spool.exists()
    box.add(101, payload(101))  # back in memory
    assert [s for s, _ in box.after(0)] == [101] and not spool.exists()
