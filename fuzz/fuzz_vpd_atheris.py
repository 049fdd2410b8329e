#!/usr/bin/env python3
"""Coverage-guided fuzzing of fastvpd.parse_vpd with atheris (libFuzzer for Python).

    python fuzz/fuzz_vpd_atheris.py NEW_DIR fuzz/corpus/vpd -max_total_time=600
    python fuzz/fuzz_vpd_atheris.py --replay fuzz/corpus/vpd [FILE ...]   # no atheris needed

Every input goes through `check`, which fails (an uncaught exception: libFuzzer saves the input
as ``crash-<sha1>`` and stops) unless:

- tolerant mode never raises, and its `Vpd` (fields, checksum, problems with offsets) and the
  raw walk equal the pure-Python reference parser's (tests/reference/vpd.py);
- strict mode raises nothing but `VpdFormatError`, the same one (offset and message) as the
  reference, naming a fatal problem the tolerant result lists; when it accepts, the blob has no
  fatal problem and strict equals tolerant;
- the accessors, ``to_dict()`` and a pickle round trip work on the result.

libFuzzer writes the inputs it finds to the first corpus directory: give it a scratch one first
so that the committed seeds (fuzz/corpus/vpd, see make_corpus.py) stay as they are. Coverage
comes from the Python code atheris instruments: fastvpd's policy (vpd.py) and the reference
parser, which walks the format branch by branch as the Cython walker does (the compiled walker
itself is not instrumented). ``--replay`` runs `check` over files or directories without
atheris: CI replays the corpus this way under AddressSanitizer.
"""

from __future__ import annotations

import pathlib
import pickle
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_LEN = 33000  # past the 32768-byte cap of VPD


def _load(instrument: bool) -> tuple[Any, Any, Any]:
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["fastvpd", "tests"]):
            import fastvpd
            import fastvpd._vpd as walker
            from tests.reference import vpd as reference
    else:
        import fastvpd
        import fastvpd._vpd as walker
        from tests.reference import vpd as reference
    return fastvpd, walker, reference


fastvpd = walker = reference = None  # set by main()


def check(data: bytes) -> None:
    """The properties of the module docstring, for one input."""
    tolerant = fastvpd.parse_vpd(data)
    assert tolerant == reference.parse_vpd(data), "tolerant parse differs from the reference"
    blob = walker.parse(data)
    names = blob.fields(walker.NAME)
    walked = (names[-1][1] if names else None, blob.fields(walker.READ_ONLY),
              blob.fields(walker.READ_WRITE), blob.checksum_state, blob.raw_problems)
    assert walked == reference.parse(data), "raw walk differs from the reference"
    tolerant.to_dict()
    (tolerant.serial_number, tolerant.part_number, tolerant.asset_tag, tolerant.checksum_ok,
     dict(tolerant.vendor_fields), dict(tolerant.system_fields), repr(tolerant), hash(tolerant))
    assert pickle.loads(pickle.dumps(tolerant)) == tolerant
    try:
        strict = fastvpd.parse_vpd(data, strict=True)
    except fastvpd.VpdFormatError as err:
        assert str(err) in tolerant.problems and str(err) in tolerant.fatal_problems
        try:
            reference.parse_vpd(data, strict=True)
        except fastvpd.VpdFormatError as ref:
            assert (err.offset, str(err)) == (ref.offset, str(ref)), "strict error differs"
        else:
            raise AssertionError("strict mode raised where the reference accepts") from err
    else:
        assert not tolerant.fatal_problems, "strict mode accepted a blob with a fatal problem"
        assert strict == tolerant == reference.parse_vpd(data, strict=True)


def _replay(paths: list[str]) -> int:
    files: list[pathlib.Path] = []
    for p in paths:
        path = pathlib.Path(p)
        files += sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    for f in files:
        try:
            check(f.read_bytes())
        except Exception:
            print(f"replay: {f} FAILED", file=sys.stderr)
            raise
    print(f"replay: {len(files)} inputs, every check held")
    return 0


def main(argv: list[str]) -> int:
    global fastvpd, walker, reference
    if "--replay" in argv[1:]:
        fastvpd, walker, reference = _load(instrument=False)
        return _replay([a for a in argv[1:] if a != "--replay"])
    import atheris

    fastvpd, walker, reference = _load(instrument=True)
    if not any(a.startswith("-max_len=") for a in argv):
        argv = [*argv, f"-max_len={MAX_LEN}"]
    atheris.Setup(argv, check)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
