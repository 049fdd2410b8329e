"""Stubs for the Cython VPD walker and Vpd type (fastvpd/_vpd.pyx)."""

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

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

_B = TypeVar("_B", bound="Blob")

PROBLEMS: Mapping[int, tuple[bool, str]]

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
    def find(self, section: int, keyword: str = "") -> bytes | None: ...
    def find_text(self, section: int, keyword: str = "") -> str | None: ...
    def fields(self, section: int) -> list[tuple[str, bytes]]: ...
    def mapping(self, section: int) -> dict[str, bytes]: ...

class Vpd(Blob):
    """A decoded VPD blob. Immutable; raw values are kept, text is normalised on access."""

    def __init__(self, name: str | None = None, read_only: Mapping[str, bytes] | None = None,
                 read_write: Mapping[str, bytes] | None = None, checksum_ok: bool | None = None,
                 problems: Iterable[str] = ()) -> None: ...
    @classmethod
    def _from_fields(cls: type[_B], name_raw: bytes | None, read_only: Iterable[tuple[str, bytes]],
                     read_write: Iterable[tuple[str, bytes]], checksum: int,
                     raw_problems: Iterable[tuple[int, int, str | None]]) -> _B: ...
    @property
    def name(self) -> str | None: ...
    @property
    def read_only(self) -> Mapping[str, bytes]: ...
    @property
    def read_write(self) -> Mapping[str, bytes]: ...
    @property
    def checksum_ok(self) -> bool | None: ...
    @property
    def problems(self) -> tuple[str, ...]: ...
    @property
    def fatal_problems(self) -> tuple[str, ...]: ...
    @property
    def serial_number(self) -> str | None: ...
    @property
    def part_number(self) -> str | None: ...
    @property
    def change_level(self) -> str | None: ...
    @property
    def manufacture_id(self) -> str | None: ...
    @property
    def asset_tag(self) -> str | None: ...
    @property
    def vendor_fields(self) -> Mapping[str, str]: ...
    @property
    def system_fields(self) -> Mapping[str, str]: ...
    def _key(self) -> tuple[Any, ...]: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...

def parse(data: bytes | bytearray | memoryview, cls: type[_B] = ...) -> _B: ...
def parse_vpd(data: bytes | bytearray | memoryview, *, strict: bool = False) -> Vpd: ...
def from_fields(
    cls: type[_B],
    name_raw: bytes | None,
    read_only: Iterable[tuple[str, bytes]],
    read_write: Iterable[tuple[str, bytes]],
    checksum: int,
    problems: list[tuple[int, int, str | None]],
) -> _B: ...
