"""Parameter types of the method table: each parses one JSON value and describes itself for docs.

Params arrive by name (an object) or by position (an array, in the table's order), like CometBFT.
Every check raises InvalidParams naming the parameter; values are never echoed back whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.rpc.errors import InvalidParams, LimitExceeded
from state.tx import MAX_TX_BYTES

MAX_HEIGHT = (1 << 63) - 1
U64_MAX = (1 << 64) - 1
LATEST = "latest"


class ParamType:
    """Parses a JSON value into a Python value for a handler."""

    doc = ""

    def parse(self, value: Any, name: str) -> Any:
        raise NotImplementedError


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
            int: "integer", float: "number"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Int(ParamType):
    """A JSON integer in [low, high]; booleans and floats are refused."""

    low: int = 0
    high: int = U64_MAX

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"integer {self.low}..{self.high}" if self.high != U64_MAX else f"integer >= {self.low}"

    def parse(self, value: Any, name: str) -> int:
        if type(value) is not int:
            raise InvalidParams(f"{name}: expected an integer, got {_type_name(value)}")
        if not self.low <= value <= self.high:
            raise InvalidParams(f"{name}: must be in {self.low}..{self.high}")
        return value


@dataclass(frozen=True)
class Height(ParamType):
    """A block height: an integer >= ``low`` or the string "latest" (parsed as None)."""

    low: int = 1
    doc = 'integer height or "latest"'

    def parse(self, value: Any, name: str) -> int | None:
        if value == LATEST and type(value) is str:
            return None
        if type(value) is not int:
            raise InvalidParams(f'{name}: expected an integer height or "latest", got {_type_name(value)}')
        if not self.low <= value <= MAX_HEIGHT:
            raise InvalidParams(f"{name}: height must be in {self.low}..{MAX_HEIGHT}")
        return value


@dataclass(frozen=True)
class Hex(ParamType):
    """0x-prefixed hex bytes of an exact ``size`` (or any length up to ``max``)."""

    size: int | None = None
    max: int = 1 << 20
    what: str = "bytes"

    @property
    def doc(self) -> str:  # type: ignore[override]
        if self.size is not None:
            return f"0x hex, {self.size} bytes ({self.what})"
        return f"0x hex, up to {self.max} bytes ({self.what})"

    def parse(self, value: Any, name: str) -> bytes:
        if type(value) is not str or not value.startswith("0x"):
            raise InvalidParams(f"{name}: expected a 0x-prefixed hex string, got {_type_name(value)}")
        if len(value) > 2 + 2 * (self.size if self.size is not None else self.max):
            raise InvalidParams(f"{name}: longer than {self.size or self.max} bytes")
        try:
            data = bytes.fromhex(value[2:])
        except ValueError:
            raise InvalidParams(f"{name}: invalid hex") from None
        if self.size is not None and len(data) != self.size:
            raise InvalidParams(f"{name}: expected {self.size} bytes, got {len(data)}")
        return data


ADDRESS = Hex(20, what="address")
HASH = Hex(32, what="hash or id")


@dataclass(frozen=True)
class AddressOrId(ParamType):
    """An account address (20 bytes) or a contribution / datanet id (32 bytes)."""

    doc = "0x hex, 20 bytes (address) or 32 bytes (id)"

    def parse(self, value: Any, name: str) -> bytes:
        data = Hex(max=32).parse(value, name)
        if len(data) not in (20, 32):
            raise InvalidParams(f"{name}: expected 20 or 32 bytes, got {len(data)}")
        return data


@dataclass(frozen=True)
class Bool(ParamType):
    doc = "boolean"

    def parse(self, value: Any, name: str) -> bool:
        if type(value) is not bool:
            raise InvalidParams(f"{name}: expected a boolean, got {_type_name(value)}")
        return value


@dataclass(frozen=True)
class Enum(ParamType):
    choices: tuple[str, ...] = ()

    @property
    def doc(self) -> str:  # type: ignore[override]
        return " | ".join(f'"{c}"' for c in self.choices)

    def parse(self, value: Any, name: str) -> str:
        if type(value) is not str or value not in self.choices:
            raise InvalidParams(f"{name}: expected one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Str(ParamType):
    """A JSON string of at most ``max`` characters."""

    max: int = 256

    @property
    def doc(self) -> str:  # type: ignore[override]
        return f"string, at most {self.max} characters"

    def parse(self, value: Any, name: str) -> str:
        if type(value) is not str:
            raise InvalidParams(f"{name}: expected a string, got {_type_name(value)}")
        if len(value) > self.max:
            raise InvalidParams(f"{name}: longer than {self.max} characters")
        return value


@dataclass(frozen=True)
class PerPage(ParamType):
    """A page size; over the server's cap is a -32005 limit error, not a silent clamp."""

    doc = "integer 1..max_page (server config, default 100)"

    def parse(self, value: Any, name: str) -> int:
        if type(value) is not int:
            raise InvalidParams(f"{name}: expected an integer, got {_type_name(value)}")
        if value < 1:
            raise InvalidParams(f"{name}: must be at least 1")
        return value  # the cap is the server's: Schema.bind checks it


@dataclass(frozen=True)
class Param:
    """One named parameter of a method."""

    name: str
    type: ParamType
    doc: str
    required: bool = False
    default: Any = None


@dataclass(frozen=True)
class Schema:
    params: tuple[Param, ...] = field(default_factory=tuple)

    def bind(self, raw: Any, max_page: int) -> dict[str, Any]:
        """Named (object) or positional (array) params -> {name: parsed value}; strict.

        A page size above ``max_page`` is a limit error; a default page size is cut to it.
        """
        if raw is None:
            raw = {}
        if type(raw) is list:
            if len(raw) > len(self.params):
                raise InvalidParams(f"expected at most {len(self.params)} positional params, got {len(raw)}")
            raw = {p.name: v for p, v in zip(self.params, raw)}
        elif type(raw) is not dict:
            raise InvalidParams("params must be an object or an array")
        known = {p.name for p in self.params}
        unknown = [k for k in raw if k not in known]
        if unknown:
            shown = ", ".join(sorted(str(k)[:40] for k in unknown)[:5])
            raise InvalidParams(f"unknown param(s): {shown}")
        out: dict[str, Any] = {}
        for p in self.params:
            is_page = type(p.type) is PerPage
            if p.name in raw and raw[p.name] is not None:
                value = p.type.parse(raw[p.name], p.name)
                if is_page and value > max_page:
                    raise LimitExceeded(f"{p.name} {value} exceeds the server's max_page {max_page}")
                out[p.name] = value
            elif p.required:
                raise InvalidParams(f"{p.name}: required")
            else:
                out[p.name] = min(p.default, max_page) if is_page else p.default
        return out


TX = Param("tx", Hex(max=MAX_TX_BYTES, what="signed transaction"), "the signed transaction bytes", required=True)
