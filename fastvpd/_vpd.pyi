"""Stubs for the Cython VPD walker (fastvpd/_vpd.pyx)."""

NO_VPD: int
NO_END_TAG: int
RESOURCE_OVERRUN: int
FIELD_OVERRUN: int
STRAY_BYTES: int
NO_VPD_R: int
NO_RV: int
RV_NOT_LAST: int
RV_EMPTY: int
CHECKSUM_BAD: int
RW_IN_VPD_R: int
RV_IN_VPD_W: int
RW_NOT_LAST: int
RW_REPEATED: int
BAD_NAME: int
UNKNOWN_RESOURCE: int
INVALID_KEYWORD: int
WRONG_SECTION: int
NOT_TEXT: int
MAX_VPD_SIZE: int
READ_ONLY: int
READ_WRITE: int
NAME: int
ENTRY_SIZE: int
CHECKSUM_NONE: int
CHECKSUM_BAD_STATE: int
CHECKSUM_OK: int

from typing import Any, TypeVar

_B = TypeVar("_B", bound="Blob")

def text(raw: bytes | bytearray | memoryview) -> str | None: ...

class Blob:
    """A walked VPD blob: bytes, packed entry table, checksum state, raw problems."""

    @property
    def data(self) -> bytes: ...
    @property
    def table(self) -> bytes: ...
    @property
    def checksum_state(self) -> int: ...
    @property
    def raw_problems(self) -> list[tuple[int, int, str | None]]: ...
    _cache_ro: Any
    _cache_rw: Any
    _cache_problems: Any
    def find(self, section: int, keyword: str = "") -> bytes | None: ...
    def find_text(self, section: int, keyword: str = "") -> str | None: ...
    def fields(self, section: int) -> list[tuple[str, bytes]]: ...
    def mapping(self, section: int) -> dict[str, bytes]: ...

def parse(data: bytes | bytearray | memoryview, cls: type[_B] = ...) -> _B: ...
def from_fields(
    cls: type[_B],
    name_raw: bytes | None,
    read_only: list[tuple[str, bytes]],
    read_write: list[tuple[str, bytes]],
    checksum: int,
    problems: list[tuple[int, int, str | None]],
) -> _B: ...
