"""Tests for strato.core.ids: FLUID generation and the RFC 19 string forms."""

import random
import time

import pytest

from strato.core import ids

# Encodings of the same ids in every form. The first five rows are the ones Flux checks
# its own encoders against; the last two are the examples printed in RFC 19 itself.
VECTORS = [
    (
        0,
        {
            "dec": "0",
            "hex": "0x0",
            "dothex": "0000.0000.0000.0000",
            "kvs": "job.0000.0000.0000.0000",
            "words": "academy-academy-academy--academy-academy-academy",
            "f58": "ƒ1",
        },
    ),
    (
        1,
        {
            "dec": "1",
            "hex": "0x1",
            "dothex": "0000.0000.0000.0001",
            "kvs": "job.0000.0000.0000.0001",
            "words": "acrobat-academy-academy--academy-academy-academy",
            "f58": "ƒ2",
        },
    ),
    (
        65535,
        {
            "dec": "65535",
            "hex": "0xffff",
            "dothex": "0000.0000.0000.ffff",
            "kvs": "job.0000.0000.0000.ffff",
            "words": "nevada-archive-academy--academy-academy-academy",
            "f58": "ƒLUv",
        },
    ),
    (
        6787342413402046,
        {
            "dec": "6787342413402046",
            "hex": "0x181d0d4d850fbe",
            "dothex": "0018.1d0d.4d85.0fbe",
            "kvs": "job.0018.1d0d.4d85.0fbe",
            "words": "cake-plume-nepal--neuron-pencil-academy",
            "f58": "ƒuzzybunny",
        },
    ),
    (
        2**64 - 2,
        {
            "dec": "18446744073709551614",
            "hex": "0xfffffffffffffffe",
            "dothex": "ffff.ffff.ffff.fffe",
            "kvs": "job.ffff.ffff.ffff.fffe",
            "words": "mustang-analyze-verbal--natural-analyze-verbal",
            "f58": "ƒjpXCZedGfVP",
        },
    ),
    (
        2**64 - 1,
        {
            "dec": "18446744073709551615",
            "hex": "0xffffffffffffffff",
            "dothex": "ffff.ffff.ffff.ffff",
            "kvs": "job.ffff.ffff.ffff.ffff",
            "words": "natural-analyze-verbal--natural-analyze-verbal",
            "f58": "ƒjpXCZedGfVQ",
        },
    ),
    (
        6731191091817518,
        {
            "dec": "6731191091817518",
            "hex": "0x17e9fb8df16c2e",
            "dothex": "0017.e9fb.8df1.6c2e",
            "kvs": "job.0017.e9fb.8df1.6c2e",
            "words": "reform-remote-galileo--heart-package-academy",
            "f58": "ƒuZZybuNNy",
        },
    ),
    (
        4181414752813056,
        {
            "dec": "4181414752813056",
            "hex": "0xedaf97d000000",
            "dothex": "000e.daf9.7d00.0000",
            "kvs": "job.000e.daf9.7d00.0000",
            "words": "random-idea-yoyo--sugar-printer-academy",
            "f58": "ƒZemgA8Bzf",
        },
    ),
]

_rng = random.Random(19)
SPREAD = [0, 1, 2, 57, 58, 1625, 1626, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
SPREAD += [_rng.getrandbits(64) for _ in range(200)]
SPREAD += [_rng.getrandbits(_rng.randint(1, 63)) for _ in range(200)]


def test_word_list() -> None:
    from strato.core.ids_words import WORDS

    assert len(WORDS) == 1626
    assert len(set(WORDS)) == 1626
    assert WORDS[:3] == ("academy", "acrobat", "active")
    assert WORDS[-1] == "amen"
    assert all(w.isascii() and w.isalpha() and w.islower() for w in WORDS)


# --- generator ------------------------------------------------------------------------


def test_generated_ids_unique_and_increasing() -> None:
    gen = ids.FluidGenerator(generator_id=7)
    made = [gen.next() for _ in range(100_000)]
    assert len(set(made)) == len(made)
    assert all(a < b for a, b in zip(made, made[1:], strict=False))
    assert all(0 <= i <= ids.MAX_JOBID for i in made)
    assert {ids.fields(i)[1] for i in made} == {7}


def test_sequence_wrap_advances_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.monotonic_ns()
    monkeypatch.setattr(ids, "_monotonic_ns", lambda: frozen)
    gen = ids.FluidGenerator(generator_id=5)
    per_ms = 1 << ids.SEQUENCE_BITS
    made = [gen.next() for _ in range(3 * per_ms + 10)]
    assert all(a < b for a, b in zip(made, made[1:], strict=False))
    split = [ids.fields(i) for i in made]
    ts0 = split[0][0]
    for n, (ts, gid, seq) in enumerate(split):
        assert (ts, gid, seq) == (ts0 + n // per_ms, 5, n % per_ms)
    # When the clock catches up past the borrowed milliseconds, it takes over again.
    monkeypatch.setattr(ids, "_monotonic_ns", lambda: frozen + 10_000_000)
    ts, _, seq = ids.fields(gen.next())
    assert (ts, seq) == (ts0 + 10, 0)


def test_generator_epoch() -> None:
    now_ms = time.time_ns() // 1_000_000
    gen = ids.FluidGenerator(epoch_ms=now_ms - 5_000)
    assert gen.epoch_ms == now_ms - 5_000
    ts, gid, seq = ids.fields(gen.next())
    assert 5_000 <= ts < 65_000
    assert (gid, seq) == (0, 0)
    ts, _, _ = ids.fields(ids.FluidGenerator().next())
    assert 0 <= ts < 60_000


def test_generator_advances_past_an_id_it_must_not_repeat() -> None:
    """A restarted instance's generator whose clock is behind the ids it recovered
    (the wall clock went back) still issues larger ones; an older id changes nothing."""
    gen = ids.FluidGenerator()
    ahead = ids.FluidGenerator(epoch_ms=time.time_ns() // 1_000_000 - 3_600_000).next()
    gen.advance_past(ahead)
    first = gen.next()
    assert first > ahead and ids.fields(first)[0] == ids.fields(ahead)[0]
    gen.advance_past(ahead - 5)
    assert gen.next() > first


def test_generator_timestamp_exhausted() -> None:
    now_ms = time.time_ns() // 1_000_000
    gen = ids.FluidGenerator(epoch_ms=now_ms - (1 << ids.TIMESTAMP_BITS))
    with pytest.raises(OverflowError):
        gen.next()


def test_generator_ids_distinguish_generators() -> None:
    top = (1 << ids.GENERATOR_BITS) - 1
    assert ids.fields(ids.FluidGenerator(generator_id=top).next())[1] == top


@pytest.mark.parametrize("bad", [-1, 1 << ids.GENERATOR_BITS, 1.0, "1"])
def test_generator_rejects_bad_generator_id(bad: object) -> None:
    with pytest.raises(ValueError):
        ids.FluidGenerator(generator_id=bad)  # type: ignore[arg-type]


def test_generator_rejects_future_epoch() -> None:
    with pytest.raises(ValueError):
        ids.FluidGenerator(epoch_ms=time.time_ns() // 1_000_000 + 60_000)


def test_layout_is_rfc19() -> None:
    assert (ids.TIMESTAMP_BITS, ids.GENERATOR_BITS, ids.SEQUENCE_BITS) == (40, 14, 10)
    assert ids.fields(3 << 24 | 2 << 10 | 1) == (3, 2, 1)


# --- encoding and parsing -------------------------------------------------------------


@pytest.mark.parametrize(("jobid", "forms"), VECTORS, ids=[str(v[0]) for v in VECTORS])
def test_vectors(jobid: int, forms: dict[str, str]) -> None:
    assert set(forms) == set(ids.FORMS)
    for form, text in forms.items():
        assert ids.encode(jobid, form) == text
        assert ids.parse(text) == jobid
    assert ids.f58(jobid) == forms["f58"]
    assert ids.encode(jobid) == forms["f58"]
    # ASCII fallback prefix, as Flux prints when the locale is not UTF-8.
    assert ids.parse("f" + forms["f58"][1:]) == jobid


@pytest.mark.parametrize("form", ids.FORMS)
def test_round_trip(form: str) -> None:
    for jobid in SPREAD:
        assert ids.parse(ids.encode(jobid, form)) == jobid


def test_f58_matches_encode() -> None:
    for jobid in SPREAD:
        assert ids.f58(jobid) == ids.encode(jobid, "f58")


def test_kvs_dir_matches_encode() -> None:
    for jobid in SPREAD:
        assert ids.kvs_dir(jobid) == ids.encode(jobid, "kvs")


def test_f58_sorts_like_ints_at_equal_length() -> None:
    sample = [2**60 + _rng.getrandbits(60) for _ in range(500)]  # all 11 F58 digits
    assert {len(ids.f58(i)) for i in sample} == {12}
    assert sorted(sample, key=ids.f58) == sorted(sample)


@pytest.mark.parametrize(
    ("text", "jobid"),
    [
        ("  1234  ", 1234),
        ("\tƒuzzybunny\n", 6787342413402046),
        ("0018.1D0D.4D85.0FBE", 6787342413402046),
        ("Cake-Plume-Nepal--Neuron-Pencil-Academy", 6787342413402046),
        ("0x181D0D4D850FBE", 6787342413402046),
        ("007", 7),
    ],
)
def test_parse_lenient_spellings(text: str, jobid: int) -> None:
    assert ids.parse(text) == jobid


BAD = [
    "",
    "   ",
    "ƒ",
    "f",
    "ƒ0",
    "ƒl",
    "ƒI",
    "ƒO",
    "ƒuzzy bunny",
    "ƒjpXCZedGfVR",  # 2**64
    "ƒ111111111111",  # too long
    "18446744073709551616",  # 2**64
    "-1",
    "+1",
    "1_000",
    "1e3",
    "١٢٣",  # non-ASCII digits
    "0x",
    "0X1f",
    "0x-1",
    "0xg",
    "0x10000000000000000",
    "xyz",
    "1" * 5000,
    "0017.e9fb.8df1",
    "0017.e9fb.8df1.6c2e.0000",
    "17.e9fb.8df1.6c2e",
    "0017.e9fb.8df1.6c2g",
    "0017..e9fb.8df1.6c2e",
    "job.0017.e9fb.8df1",
    "kvs.0017.e9fb.8df1.6c2e",
    "job0017.e9fb.8df1.6c2e",
    "academy-academy",
    "foo-bar-baz--qux-quux-corge",
    "academy-academy-academy-academy-academy-academy",
    "academy-academy-academy--academy-academy-academy--academy",
    "academy-academy-yes--academy-academy-academy",  # 24-bit remainder word
    "academy-academy-amen--academy-academy-academy",  # triple beyond 2**32
    "acad3my-academy-academy--academy-academy-academy",
]


@pytest.mark.parametrize("text", BAD)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="^invalid job id ") as info:
        ids.parse(text)
    assert "\n" not in str(info.value)


def test_parse_error_message() -> None:
    with pytest.raises(ValueError) as info:
        ids.parse("xyz")
    assert str(info.value) == "invalid job id 'xyz'"


def test_parse_rejects_non_str() -> None:
    with pytest.raises(TypeError):
        ids.parse(1234)  # type: ignore[arg-type]


@pytest.mark.parametrize("jobid", [-1, 2**64, -(2**64)])
@pytest.mark.parametrize("form", ids.FORMS)
def test_encode_rejects_out_of_range(jobid: int, form: str) -> None:
    with pytest.raises(ValueError):
        ids.encode(jobid, form)


def test_encode_rejects_bad_form_and_type() -> None:
    with pytest.raises(ValueError):
        ids.encode(1, "emoji")
    with pytest.raises(ValueError):
        ids.f58(2**64)
    with pytest.raises(TypeError):
        ids.f58(1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ids.encode("1", "dec")  # type: ignore[arg-type]
