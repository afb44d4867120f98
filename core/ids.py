"""Job ids: FLUIDs (Flux RFC 19) and the string forms users see them in.

Why this exists: every job needs an id that is unique within an instance, that can be
made by any broker rank without talking to the others, and that still sorts roughly in
submission order. RFC 19 gets all three from one 64-bit integer, patterned on Twitter
Snowflake::

    [ timestamp: 40 bits | generator id: 14 bits | sequence: 10 bits ]

The timestamp counts milliseconds since a generator epoch (normally the instance's start
time; 40 bits last about 34 years), the generator id is normally the broker rank, and the
sequence tells apart ids made in the same millisecond. The field widths are the ones of
RFC 19 and Flux, so ids are interchangeable with Flux tools.

Users rarely see the integer itself. RFC 19 defines string forms, all accepted by
``parse`` and produced by ``encode``; for the id 6787342413402046 they are:

    dec      6787342413402046
    hex      0x181d0d4d850fbe
    dothex   0018.1d0d.4d85.0fbe                 (KVS-friendly, 4 hex digits per part)
    kvs      job.0018.1d0d.4d85.0fbe             (the job's directory in the KVS)
    words    cake-plume-nepal--neuron-pencil-academy      (mnemonicode, for the phone)
    f58      ƒuzzybunny                          (base58, the default display form)

F58 is also accepted with an ASCII ``f`` prefix, which Flux prints when the locale cannot
show ``ƒ``. The optional emoji form of RFC 19 is not supported.
"""

import re
import time

__all__ = [
    "FORMS",
    "F58_ALPHABET",
    "F58_PREFIX",
    "GENERATOR_BITS",
    "MAX_JOBID",
    "SEQUENCE_BITS",
    "TIMESTAMP_BITS",
    "FluidGenerator",
    "encode",
    "f58",
    "fields",
    "parse",
]

TIMESTAMP_BITS = 40
GENERATOR_BITS = 14
SEQUENCE_BITS = 10

MAX_JOBID = (1 << 64) - 1
_TIMESTAMP_MAX = (1 << TIMESTAMP_BITS) - 1
_GENERATOR_MAX = (1 << GENERATOR_BITS) - 1
_SEQUENCE_MAX = (1 << SEQUENCE_BITS) - 1
_TIMESTAMP_SHIFT = GENERATOR_BITS + SEQUENCE_BITS

F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
F58_PREFIX = "\u0192"  # ƒ, LATIN SMALL LETTER F WITH HOOK
_F58_VALUE = {c: i for i, c in enumerate(F58_ALPHABET)}
_F58_MAX_DIGITS = 11  # 58**11 > 2**64

_MN_BASE = 1626  # len(ids_words.WORDS): the cube root of 2**32 rounded up


# The word list and the regular expressions below are loaded on first use: most
# commands only print f58 ids, and a short command feels every millisecond.
def _word_value() -> dict[str, int]:
    global _WORD_VALUE
    if _WORD_VALUE is None:
        from .ids_words import WORDS

        _WORD_VALUE = {w: i for i, w in enumerate(WORDS)}
    return _WORD_VALUE


_WORD_VALUE: dict[str, int] | None = None

FORMS = ("dec", "hex", "dothex", "kvs", "words", "f58")

# Looked up as a module global by FluidGenerator.next (fast, and tests can replace it).
_monotonic_ns = time.monotonic_ns


class FluidGenerator:
    """Makes FLUIDs for one generator id (normally the broker rank).

    ``epoch_ms`` is the Unix time in milliseconds that timestamps count from; it
    defaults to now. Pass the instance's start time so that a restarted instance keeps
    issuing ids larger than the ones before it. The clock is read monotonically, so a
    wall clock step does not make ids go backwards within one generator.

    ``next`` is not thread-safe: use one generator per thread (with distinct ids), or
    call it from the event loop only.
    """

    __slots__ = ("generator_id", "epoch_ms", "_offset_ms", "_generator_bits", "_ts", "_seq")

    def __init__(self, generator_id: int = 0, epoch_ms: int | None = None) -> None:
        if not isinstance(generator_id, int) or not 0 <= generator_id <= _GENERATOR_MAX:
            raise ValueError(f"generator id must be 0..{_GENERATOR_MAX}, got {generator_id!r}")
        now_ms = time.time_ns() // 1_000_000
        if epoch_ms is None:
            epoch_ms = now_ms
        elif not isinstance(epoch_ms, int) or epoch_ms > now_ms:
            raise ValueError(f"epoch_ms must be an int not in the future, got {epoch_ms!r}")
        self.generator_id = generator_id
        self.epoch_ms = epoch_ms
        # timestamp = monotonic ms + offset, anchored so it equals wall time - epoch now.
        self._offset_ms = (now_ms - epoch_ms) - _monotonic_ns() // 1_000_000
        self._generator_bits = generator_id << SEQUENCE_BITS
        self._ts = -1
        self._seq = 0

    def next(self) -> int:
        """Return a new id, larger than every id this generator returned before."""
        now = _monotonic_ns() // 1_000_000 + self._offset_ms
        if now > self._ts:
            self._ts = now
            self._seq = 0
        elif self._seq < _SEQUENCE_MAX:
            self._seq += 1
        else:  # 1024 ids in this millisecond: borrow the next one instead of sleeping
            self._ts += 1
            self._seq = 0
        if self._ts > _TIMESTAMP_MAX:
            raise OverflowError("FLUID timestamp exhausted (epoch is over 34 years ago)")
        return self._ts << _TIMESTAMP_SHIFT | self._generator_bits | self._seq

    def advance_past(self, jobid: int) -> None:
        """Issue only ids larger than `jobid` from now on: a restarted instance must
        never repeat an id it issued before, even if the wall clock went back."""
        ts, _, seq = fields(jobid)
        if (ts, seq) > (self._ts, self._seq):
            self._ts, self._seq = ts, seq


def fields(jobid: int) -> tuple[int, int, int]:
    """Split a FLUID into (timestamp ms since its epoch, generator id, sequence)."""
    _check(jobid)
    return (
        jobid >> _TIMESTAMP_SHIFT,
        jobid >> SEQUENCE_BITS & _GENERATOR_MAX,
        jobid & _SEQUENCE_MAX,
    )


def _check(jobid: int) -> None:
    if not isinstance(jobid, int):
        raise TypeError(f"job id must be an int, not {type(jobid).__name__}")
    if not 0 <= jobid <= MAX_JOBID:
        raise ValueError(f"job id out of range: {jobid}")


# --- encoding -------------------------------------------------------------------------


def f58(jobid: int) -> str:
    """Encode ``jobid`` in F58, e.g. ``ƒuzzybunny``; the fast path for display."""
    if not isinstance(jobid, int) or not 0 <= jobid <= MAX_JOBID:
        _check(jobid)
    alphabet = F58_ALPHABET
    jobid, r = divmod(jobid, 58)
    out = alphabet[r]
    while jobid:
        jobid, r = divmod(jobid, 58)
        out = alphabet[r] + out
    return F58_PREFIX + out


def _dothex(jobid: int) -> str:
    h = f"{jobid:016x}"
    return f"{h[0:4]}.{h[4:8]}.{h[8:12]}.{h[12:16]}"


def _words(jobid: int) -> str:
    # mnemonicode: the 8 bytes little-endian in two 4-byte groups (low 32 bits first),
    # each group read as a little-endian number x and written as three base-1626 digits,
    # least significant first.
    from .ids_words import WORDS as w

    b = _MN_BASE
    lo = jobid & 0xFFFFFFFF
    hi = jobid >> 32
    return (
        f"{w[lo % b]}-{w[lo // b % b]}-{w[lo // (b * b)]}--"
        f"{w[hi % b]}-{w[hi // b % b]}-{w[hi // (b * b)]}"
    )


def kvs_dir(jobid: int) -> str:
    """``encode(jobid, "kvs")`` of an id known to be valid (one the job manager
    issued), without its checks: the job's KVS directory."""
    return "job." + _dothex(jobid)


_ENCODERS = {
    "dec": str,
    "hex": hex,
    "dothex": _dothex,
    "kvs": kvs_dir,
    "words": _words,
    "f58": f58,
}


def encode(jobid: int, form: str = "f58") -> str:
    """Encode ``jobid`` in one of ``FORMS`` (default F58)."""
    try:
        encoder = _ENCODERS[form]
    except KeyError:
        raise ValueError(f"unknown job id form {form!r}; expected one of {FORMS}") from None
    _check(jobid)
    return encoder(int(jobid))


# --- parsing --------------------------------------------------------------------------

_HEX4 = "([0-9a-fA-F]{4})"
_WORD = "([a-zA-Z]+)"
_DOTHEX_RE = rf"(?:job\.)?{_HEX4}\.{_HEX4}\.{_HEX4}\.{_HEX4}"  # compiled by re on first use
_WORDS_RE = f"{_WORD}-{_WORD}-{_WORD}--{_WORD}-{_WORD}-{_WORD}"
_HEX_RE = r"0x[0-9a-fA-F]+"
_DEC_RE = r"[0-9]+"
_MAX_TEXT = 100  # longer than any form, even with leading zeros; bounds work on junk


def _parse_words(s: str) -> int | None:
    m = re.fullmatch(_WORDS_RE, s)
    if m is None:
        return None
    try:
        value = _word_value()
        d = [value[word.lower()] for word in m.groups()]
    except KeyError:
        return None
    b = _MN_BASE
    lo = d[0] + b * d[1] + b * b * d[2]
    hi = d[3] + b * d[4] + b * b * d[5]
    if lo > 0xFFFFFFFF or hi > 0xFFFFFFFF:  # the ~0.09% of triples that encode nothing
        return None
    return hi << 32 | lo


def _parse_f58(digits: str) -> int | None:
    if not 0 < len(digits) <= _F58_MAX_DIGITS:
        return None
    value = 0
    table = _F58_VALUE
    for c in digits:
        d = table.get(c)
        if d is None:
            return None
        value = value * 58 + d
    return value


def _parse(s: str) -> int | None:
    # Dispatch as RFC 19 prescribes: the forms are told apart by their characters.
    if "." in s:
        m = re.fullmatch(_DOTHEX_RE, s)
        return int("".join(m.groups()), 16) if m else None
    if "-" in s:
        return _parse_words(s)
    if s[:1] in (F58_PREFIX, "f"):
        return _parse_f58(s[1:])
    if s.startswith("0x"):
        return int(s, 16) if re.fullmatch(_HEX_RE, s) else None
    return int(s) if re.fullmatch(_DEC_RE, s) else None


def parse(text: str) -> int:
    """Decode a job id given in any form of ``FORMS`` (surrounding whitespace ignored).

    Raises ``ValueError`` ("invalid job id '...'") for anything that is not one of the
    forms or is outside 0..2**64-1.
    """
    if not isinstance(text, str):
        raise TypeError(f"job id text must be a str, not {type(text).__name__}")
    s = text.strip()
    value = _parse(s) if len(s) <= _MAX_TEXT else None
    if value is None or value > MAX_JOBID:
        shown = text if len(text) <= 64 else text[:60] + "..."
        raise ValueError(f"invalid job id {shown!r}")
    return value
