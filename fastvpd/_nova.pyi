"""Stubs for the Cython builder of Nova's device dicts (fastvpd/_nova.pyx)."""

from collections.abc import Callable, Container
from typing import Any

def build(text: str, offsets: Any, vendor: Any, device: Any, numa: Any, kind: Any, parent: Any,
          vf_num: Any, flags: Any, netdev_flag: int, own_vpd: Container[int],
          template_of: Callable[[int, int, int, int], tuple[Any, ...]],
          row_dict: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]: ...
