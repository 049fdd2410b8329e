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

def text(raw: bytes | bytearray | memoryview) -> str | None: ...
def parse(
    data: bytes | bytearray | memoryview,
) -> tuple[bytes, bytes, int, list[tuple[int, int, str | None]]]: ...
def find(data: bytes, table: bytes, section: int, keyword: str = "") -> bytes | None: ...
def find_text(data: bytes, table: bytes, section: int, keyword: str = "") -> str | None: ...
def fields(data: bytes, table: bytes, section: int) -> list[tuple[str, bytes]]: ...
def mapping(data: bytes, table: bytes, section: int) -> dict[str, bytes]: ...
