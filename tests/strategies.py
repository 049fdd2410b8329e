"""Hypothesis strategies for VPD blobs, valid and corrupted; shared by the VPD tests and fuzz/.

- `build_args` / `clean_build_args`: ``(name, read_only, read_write)`` for `fastvpd.build_vpd`;
  the clean ones build strict-clean blobs (no problem at all).
- `valid_blobs`: strict-clean blobs made by `build_vpd`.
- `structured_blobs`: blobs assembled resource by resource from `Resource`/`Field` parts, with
  every oddity the format allows: several VPD-R/VPD-W resources, unknown large and small resources,
  stray bytes, lying lengths, RV fields with a right, wrong or missing checksum, misplaced RV/RW,
  invalid keywords, no end tag, bytes after the end tag.
- `mutated(base)`: a blob from ``base`` after truncation, byte flips, inserted or deleted bytes.
- `corrupted_blobs`: all of the above damaged, plus random bytes.
- `any_blobs`: valid and corrupted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

KEYWORD_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
READ_ONLY_TEXT = ("PN", "EC", "MN", "SN")
#: Keywords seen in the wild (spec/vpd.md), so that examples hit the interesting ones often.
COMMON_KEYWORDS = ("PN", "EC", "MN", "SN", "CP", "RV", "YA", "RW", "V0", "V1", "VA", "VZ", "Y0",
                   "Y1", "YZ", "CC", "FC", "FN", "NA", "RM", "Z0", "FG", "LC", "PG")
UNKNOWN_LARGE_TAGS = [t for t in range(0x80, 0x100) if t not in (0x82, 0x90, 0x91)]


# -- keywords and values ---------------------------------------------------------------------------
any_keyword = st.text(KEYWORD_CHARS, min_size=2, max_size=2)
keywords = st.one_of(st.sampled_from(COMMON_KEYWORDS), any_keyword)


def keywords_without(pred) -> st.SearchStrategy[str]:
    """Keywords for which ``pred`` is false (filtered up front, so hypothesis rarely retries)."""
    return st.one_of(st.sampled_from([k for k in COMMON_KEYWORDS if not pred(k)]),
                     any_keyword.filter(lambda k: not pred(k)))


#: Two keyword bytes that are not two characters of [A-Z0-9].
invalid_keyword_bytes = st.binary(min_size=2, max_size=2).filter(
    lambda kw: not all(chr(c) in KEYWORD_CHARS for c in kw))

printable_bytes = st.binary(max_size=40).map(lambda b: bytes(0x20 + c % 95 for c in b))


@st.composite
def text_like_bytes(draw, max_size: int = 40) -> bytes:
    """Mostly printable bytes, with the bytes normalisation cares about sprinkled in."""
    specials = st.sampled_from([0x00, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x7F, 0x80, 0xE9, 0xFF,
                                0x5C, 0x85])
    chars = st.one_of(st.integers(0x21, 0x7E), st.integers(0x21, 0x7E), specials)
    return bytes(draw(st.lists(chars, max_size=max_size)))


raw_values = st.one_of(printable_bytes, text_like_bytes(), st.binary(max_size=40))


def _clean_text(value: bytes) -> bytes:
    """Make a value whose normalised text is printable (what a well-made card stores)."""
    return value.replace(b"\0", b"").translate(bytes(0x20 + c % 95 if not 0x20 <= c <= 0x7E else c
                                                     for c in range(256)))


# -- build_vpd arguments ---------------------------------------------------------------------------
def _build_value(value: bytes, as_text: bool) -> bytes | str:
    return value.decode("ascii") if as_text and value.isascii() else value


@st.composite
def build_args(draw, max_fields: int = 8):
    """Arguments of `build_vpd` that it accepts (no RV/RW misuse; values may be anything)."""
    name = draw(st.one_of(st.none(), st.text(st.characters(max_codepoint=0x7F), max_size=30)))
    ro = []
    for kw in draw(st.lists(keywords_without(lambda k: k in ("RV", "RW")), max_size=max_fields)):
        ro.append((kw, _build_value(draw(raw_values), draw(st.booleans()))))
    rw = []
    for kw in draw(st.lists(keywords_without(lambda k: k in ("RV", "RW")), max_size=max_fields)):
        rw.append((kw, _build_value(draw(raw_values), draw(st.booleans()))))
    if draw(st.integers(0, 4)) == 0:  # an explicit RV with reserved bytes
        ro.append(("RV", bytes(1 + draw(st.integers(0, 8)))))
    if rw and draw(st.booleans()):  # an explicit RW area
        rw.append(("RW", bytes(draw(st.integers(0, 12)))))
    return name, ro, rw


@st.composite
def clean_build_args(draw, max_fields: int = 8):
    """Arguments of `build_vpd` that give a blob with no problem at all."""
    name = draw(st.one_of(st.none(), printable_bytes.map(bytes.decode)))
    ro, rw = [], []
    for kw in draw(st.lists(keywords_without(lambda k: k[0] == "Y" or k in ("RV", "RW")),
                            max_size=max_fields)):
        value = draw(raw_values)
        if kw in READ_ONLY_TEXT or kw[0] == "V":
            value = _clean_text(value)
        ro.append((kw, _build_value(value, draw(st.booleans()))))
    for kw in draw(st.lists(keywords_without(
            lambda k: k in ("RV", "RW", "PN", "EC", "MN", "SN", "CP")), max_size=max_fields)):
        value = draw(raw_values)
        if kw[0] == "Y":
            value = _clean_text(value)
        rw.append((kw, _build_value(value, draw(st.booleans()))))
    return name, ro, rw


def _build(args) -> bytes:
    from fastvpd import build_vpd

    return build_vpd(*args)


valid_blobs = clean_build_args().map(_build)


# -- blobs assembled from parts --------------------------------------------------------------------
@dataclass
class Field:
    """One keyword field; ``length`` overrides the length byte; ``fix`` sets the RV checksum."""

    keyword: bytes
    value: bytes = b""
    length: int | None = None
    fix: bool = False


@dataclass
class Resource:
    """One resource: a tag, then fields (VPD-R/VPD-W) or raw bytes; ``length`` may lie."""

    tag: int
    fields: list[Field] = field(default_factory=list)
    payload: bytes = b""
    stray: bytes = b""
    length: int | None = None


def assemble(resources: list[Resource], end: bytes = b"\x78", after: bytes = b"") -> bytes:
    """The bytes of ``resources``, then ``end`` (the end tag or nothing), then ``after``.

    An RV field with ``fix`` gets the first value byte that makes the sum of every byte from 0
    through it zero (the checksum rule), computed over the bytes as assembled, lies included.
    """
    out = bytearray()
    for res in resources:
        size = len(res.payload) + len(res.stray) + sum(3 + len(f.value) for f in res.fields)
        length = size if res.length is None else res.length
        if res.tag & 0x80:
            out += bytes((res.tag,)) + (length & 0xFFFF).to_bytes(2, "little")
        else:
            out.append((res.tag & 0x78) | (length & 0x07))
        out += res.payload
        for f in res.fields:
            out += f.keyword + bytes(((len(f.value) if f.length is None else f.length) & 0xFF,))
            if f.fix and f.value:
                out.append(-sum(out) & 0xFF)
                out += f.value[1:]
            else:
                out += f.value
        out += res.stray
    return bytes(out + end + after)


@st.composite
def fields_of(draw, read_only: bool) -> list[Field]:
    out = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["plain", "plain", "plain", "rv", "rw", "invalid"]))
        if kind == "plain":
            f = Field(draw(keywords).encode(), draw(raw_values))
        elif kind == "rv":
            f = Field(b"RV", bytes(draw(st.integers(0, 4))), fix=draw(st.integers(0, 3)) > 0)
        elif kind == "rw":
            f = Field(b"RW", bytes(draw(st.integers(0, 6))))
        else:
            f = Field(draw(invalid_keyword_bytes), draw(st.binary(max_size=6)))
        if draw(st.integers(0, 15)) == 0:
            f.length = draw(st.integers(0, 255))
        out.append(f)
    if read_only and draw(st.integers(0, 3)) > 0:  # usually close VPD-R with a right RV
        out.append(Field(b"RV", bytes(1 + draw(st.integers(0, 4))), fix=True))
    elif not read_only and draw(st.booleans()):
        out.append(Field(b"RW", bytes(draw(st.integers(0, 6)))))
    return out


@st.composite
def resources(draw) -> Resource:
    kind = draw(st.sampled_from(["name", "vpd-r", "vpd-r", "vpd-w", "large", "small"]))
    if kind == "name":
        res = Resource(0x82, payload=draw(st.one_of(printable_bytes, text_like_bytes())))
    elif kind in ("vpd-r", "vpd-w"):
        read_only = kind == "vpd-r"
        res = Resource(0x90 if read_only else 0x91, fields=draw(fields_of(read_only)))
        if draw(st.integers(0, 7)) == 0:
            res.stray = draw(st.binary(min_size=1, max_size=2))
    elif kind == "large":
        tag = draw(st.sampled_from(UNKNOWN_LARGE_TAGS))
        res = Resource(tag, payload=draw(st.binary(max_size=8)))
    else:  # a small resource other than the end tag
        item = draw(st.integers(0, 14))
        res = Resource(item << 3, payload=draw(st.binary(max_size=7)))
    if draw(st.integers(0, 15)) == 0:
        res.length = draw(st.integers(0, 0x7F if res.tag & 0x80 else 7))
    return res


@st.composite
def structured_blobs(draw) -> bytes:
    """Blobs assembled from resources; usually the typical layout, often something odd."""
    if draw(st.booleans()):
        parts = [draw(resources()) for _ in range(draw(st.integers(0, 6)))]
    else:  # name, VPD-R, optional VPD-W, in the usual order
        parts = [Resource(0x82, payload=draw(printable_bytes)),
                 Resource(0x90, fields=draw(fields_of(True)))]
        if draw(st.booleans()):
            parts.append(Resource(0x91, fields=draw(fields_of(False))))
    end = draw(st.sampled_from([b"\x78", b"\x78", b"\x78", b"\x79", b"\x7f", b""]))
    after = draw(st.one_of(st.just(b""), st.binary(max_size=8)))
    return assemble(parts, end, after)


# -- damage ----------------------------------------------------------------------------------------
@st.composite
def mutated(draw, base: st.SearchStrategy[bytes]) -> bytes:
    """A blob from ``base`` after 1-3 of: truncation, bit flip, byte set, insertion, deletion."""
    blob = bytearray(draw(base))
    for op in draw(st.lists(st.sampled_from(["truncate", "flip", "set", "insert", "delete"]),
                            min_size=1, max_size=3)):
        n = len(blob)
        if op == "truncate":
            del blob[draw(st.integers(0, n)):]
        elif op == "insert":
            at = draw(st.integers(0, n))
            blob[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif n == 0:
            continue
        elif op == "flip":
            blob[draw(st.integers(0, n - 1))] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            blob[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        else:
            at = draw(st.integers(0, n - 1))
            del blob[at:at + draw(st.integers(1, 4))]
    return bytes(blob)


random_blobs = st.one_of(
    st.binary(max_size=64),
    st.tuples(st.sampled_from([0x82, 0x90, 0x91, 0x78]), st.binary(max_size=64)).map(
        lambda t: bytes((t[0],)) + t[1]),
)

corrupted_blobs = st.one_of(
    mutated(valid_blobs),
    mutated(structured_blobs()),
    structured_blobs(),
    random_blobs,
)

any_blobs = st.one_of(valid_blobs, corrupted_blobs)


@st.composite
def capped_blobs(draw) -> bytes:
    """Blobs around the 32768-byte cap: a big unknown resource, then resources across the cap."""
    pad = draw(st.integers(32768 - 80, 32768 + 10))
    tail = draw(structured_blobs())
    return assemble([Resource(0xA5, payload=bytes(pad - 3))], end=b"") + tail
