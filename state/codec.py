"""Canonical msgpack encoding for every consensus-critical structure.

Rule (DESIGN section 2): a structure is a msgpack array with a fixed field order, integers as
msgpack ints, byte strings as bin, text as str. Decoding rejects anything that would not re-encode
to the same bytes: trailing bytes, maps, floats, nil, wrong types, extra or missing fields and
non-minimal integers.

A structure is a frozen dataclass decorated with ``@canonical`` whose fields carry a wire type made
with ``f(T)``. ``encode(obj)`` and ``decode(cls, data)`` are the only ways bytes enter or leave.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Generic, Protocol, TypeVar, dataclass_transform

import msgpack

__all__ = [
    "CodecError",
    "UInt",
    "SInt",
    "Bytes",
    "Str",
    "List",
    "Nested",
    "Tuple",
    "f",
    "canonical",
    "encode",
    "decode",
    "pack",
    "unpack",
    "U8",
    "U16",
    "U32",
    "U64",
    "I64",
    "HASH",
    "ADDRESS",
    "PUBKEY",
    "SIGNATURE",
]

MAX_MESSAGE = 8 * 1024 * 1024
_SCALARS = {int, bytes, str}  # the only non-list types a wire value may hold
_WIRE_TYPES = _SCALARS | {list}
_INT_ONLY = {int}


class CodecError(ValueError):
    """Raised for any byte string that is not the canonical encoding of the expected structure."""


class WireType(Protocol):
    def check(self, value: Any, path: str) -> Any: ...

    def to_wire(self, value: Any) -> Any: ...

    def from_wire(self, value: Any, path: str) -> Any: ...

    def describe(self) -> str: ...


def identity(value: Any) -> Any:
    """The wire form of a scalar (int, bytes, text) is the value itself; ``canonical`` encodes a
    structure's scalar fields without calling it."""
    return value


@dataclass(frozen=True)
class UInt:
    """Unsigned integer below 2**bits."""

    bits: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "_limit", 1 << self.bits)

    def check(self, value: Any, path: str) -> int:
        if type(value) is not int or not 0 <= value < self._limit:  # type: ignore[attr-defined]
            raise CodecError(f"{path}: expected uint{self.bits}, got {value!r:.40}")
        return value

    to_wire = staticmethod(identity)
    from_wire = check

    def describe(self) -> str:
        return f"uint{self.bits}"


@dataclass(frozen=True)
class SInt:
    """Signed integer in [-2**(bits-1), 2**(bits-1))."""

    bits: int

    def check(self, value: Any, path: str) -> int:
        lim = 1 << (self.bits - 1)
        if type(value) is not int or not -lim <= value < lim:
            raise CodecError(f"{path}: expected int{self.bits}, got {value!r:.40}")
        return value

    to_wire = staticmethod(identity)

    def from_wire(self, value: Any, path: str) -> int:
        return self.check(value, path)

    def describe(self) -> str:
        return f"int{self.bits}"


@dataclass(frozen=True)
class Bytes:
    """Byte string (msgpack bin); ``sizes`` lists the allowed exact lengths, else up to ``max``."""

    max: int = MAX_MESSAGE
    sizes: tuple[int, ...] = ()

    def check(self, value: Any, path: str) -> bytes:
        if type(value) is not bytes:
            raise CodecError(f"{path}: expected bytes, got {type(value).__name__}")
        if self.sizes:
            if len(value) not in self.sizes:
                raise CodecError(f"{path}: expected {self._sizes()} bytes, got {len(value)}")
        elif len(value) > self.max:
            raise CodecError(f"{path}: {len(value)} bytes exceeds the limit of {self.max}")
        return value

    to_wire = staticmethod(identity)
    from_wire = check

    def _sizes(self) -> str:
        return " or ".join(str(s) for s in self.sizes)

    def describe(self) -> str:
        if self.sizes:
            return f"bin({self._sizes()})"
        return f"bin(<= {self.max})"


@dataclass(frozen=True)
class Str:
    """UTF-8 text (msgpack str) of at most ``max`` bytes."""

    max: int

    def check(self, value: Any, path: str) -> str:
        if type(value) is not str:
            raise CodecError(f"{path}: expected str, got {type(value).__name__}")
        if len(value.encode("utf-8", "surrogatepass")) > self.max:
            raise CodecError(f"{path}: text longer than {self.max} bytes")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CodecError(f"{path}: text is not valid UTF-8") from exc
        return value

    to_wire = staticmethod(identity)

    def from_wire(self, value: Any, path: str) -> str:
        return self.check(value, path)

    def describe(self) -> str:
        return f"str(<= {self.max} bytes)"


def _each(checks: Iterable[Callable[[Any, str], Any]], values: Any, path: str) -> tuple[Any, ...]:
    """``check(value, path)`` of each pair. Item paths (``path[3]``) cost more than most checks,
    so they are built only after a failure, to name the bad item in the error."""
    pairs = list(zip(checks, values))
    try:
        return tuple([check(v, path) for check, v in pairs])
    except CodecError:
        for i, (check, v) in enumerate(pairs):
            check(v, f"{path}[{i}]")
        raise


@dataclass(frozen=True)
class List:
    """Array of at most ``max`` items of one type; Python side is a tuple."""

    item: Any
    max: int

    def check(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) not in (tuple, list):
            raise CodecError(f"{path}: expected a list, got {type(value).__name__}")
        if len(value) > self.max:
            raise CodecError(f"{path}: {len(value)} items exceeds the limit of {self.max}")
        if self._are_uints(value):
            return tuple(value)
        return _each(itertools.repeat(self.item.check), value, path)

    def to_wire(self, value: Any) -> list[Any]:
        if type(self.item) is UInt:
            return list(value)
        to = self.item.to_wire
        return [to(v) for v in value]

    def from_wire(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not list:
            raise CodecError(f"{path}: expected an array, got {type(value).__name__}")
        if len(value) > self.max:
            raise CodecError(f"{path}: {len(value)} items exceeds the limit of {self.max}")
        if self._are_uints(value):
            return tuple(value)
        fw = self.item.from_wire
        item_path = path + "[]"  # built once: per-item paths cost more than the check itself
        return tuple([fw(v, item_path) for v in value])

    def _are_uints(self, value: Any) -> bool:
        """Whether ``value`` is all in range for a list of UInt, checked at C speed (fingerprints
        are lists of up to a few thousand uint64). False sends it to the per-item check, which
        also names the first bad item."""
        item = self.item
        return (
            type(item) is UInt
            and (not value or (
                set(map(type, value)) == _INT_ONLY
                and min(value) >= 0
                and max(value) < item._limit  # type: ignore[attr-defined]
            ))
        )

    def describe(self) -> str:
        return f"array(<= {self.max}) of {self.item.describe()}"


@dataclass(frozen=True)
class Tuple:
    """Fixed-length heterogeneous array (e.g. a (datanet, weight) pair); Python side is a tuple."""

    items: tuple[Any, ...]

    def check(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) not in (tuple, list) or len(value) != len(self.items):
            raise CodecError(f"{path}: expected a {len(self.items)}-tuple")
        return _each([t.check for t in self.items], value, path)

    def to_wire(self, value: Any) -> list[Any]:
        return [t.to_wire(v) for t, v in zip(self.items, value)]

    def from_wire(self, value: Any, path: str) -> tuple[Any, ...]:
        if type(value) is not list or len(value) != len(self.items):
            raise CodecError(f"{path}: expected an array of {len(self.items)}")
        return _each([t.from_wire for t in self.items], value, path)

    def describe(self) -> str:
        return "[" + ", ".join(t.describe() for t in self.items) + "]"


S = TypeVar("S")


@dataclass(frozen=True)
class Nested(Generic[S]):
    """A canonical structure embedded as an array inside another."""

    cls: type[S]

    def check(self, value: Any, path: str) -> S:
        if not isinstance(value, self.cls):
            raise CodecError(f"{path}: expected {self.cls.__name__}")
        return value

    def to_wire(self, value: Any) -> list[Any]:
        return value.to_wire()  # type: ignore[no-any-return]

    def from_wire(self, value: Any, path: str) -> S:
        return self.cls.from_wire(value, path)  # type: ignore[attr-defined,no-any-return]

    def describe(self) -> str:
        return self.cls.__name__


U8 = UInt(8)
U16 = UInt(16)
U32 = UInt(32)
U64 = UInt(64)
I64 = SInt(64)
HASH = Bytes(sizes=(32,))
ADDRESS = Bytes(sizes=(20,))
PUBKEY = Bytes(sizes=(32,))
SIGNATURE = Bytes(sizes=(64,))


def f(wire_type: Any, **kwargs: Any) -> Any:
    """Declare a dataclass field with its wire type."""
    return field(metadata={"wire": wire_type}, **kwargs)


T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(f, field))
def canonical(cls: type[T]) -> type[T]:
    """Make a frozen dataclass a canonical structure: ``to_wire``/``from_wire``/``encode``/``decode``.

    Construction validates every field, so an invalid structure can never be built or encoded.
    """
    # Optional cross-field rule: ``validate(self, path)`` runs after construction and decoding.
    validate = getattr(cls, "validate", None)
    name = cls.__name__
    specs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self: Any) -> None:
        for fname, wt, fpath in checks:
            object.__setattr__(self, fname, wt.check(getattr(self, fname), fpath))
        if validate is not None:
            validate(self, name)

    # dataclass() only wires __post_init__ into __init__ when it exists before decoration.
    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]
    cls = dataclass(frozen=True)(cls)
    specs = tuple((fd.name, fd.metadata["wire"]) for fd in dataclasses.fields(cls))  # type: ignore[arg-type]
    # field paths for error messages are built once, not per decode
    checks = tuple((fname, wt, f"{name}.{fname}") for fname, wt in specs)
    decoders = tuple((fname, wt.from_wire, f"{name}.{fname}") for fname, wt in specs)
    n = len(specs)

    # scalar fields are their own wire form: read them all at once, convert only the nested ones
    names = tuple(fname for fname, _ in specs)
    converters = tuple((i, wt.to_wire) for i, (_, wt) in enumerate(specs) if wt.to_wire is not identity)
    get_all = operator.attrgetter(*names) if n > 1 else None

    def to_wire(self: Any) -> list[Any]:
        out = list(get_all(self)) if get_all is not None else [getattr(self, fname) for fname in names]
        for i, conv in converters:
            out[i] = conv(out[i])
        return out

    def from_wire(klass: Any, value: Any, path: str = name) -> Any:
        if type(value) is not list:
            raise CodecError(f"{path}: expected an array, got {type(value).__name__}")
        if len(value) != n:
            raise CodecError(f"{path}: expected {n} fields, got {len(value)}")
        obj = object.__new__(klass)
        setattr_ = object.__setattr__
        for (fname, from_w, fpath), v in zip(decoders, value):
            setattr_(obj, fname, from_w(v, fpath))
        if validate is not None:
            validate(obj, path)
        return obj

    def encode_self(self: Any) -> bytes:
        return pack(self.to_wire())

    cls.to_wire = to_wire  # type: ignore[attr-defined]
    cls.from_wire = classmethod(from_wire)  # type: ignore[attr-defined]
    cls.encode = encode_self  # type: ignore[attr-defined]
    cls.WIRE_FIELDS = specs  # type: ignore[attr-defined]
    return cls


class Canonical(Protocol):
    WIRE_FIELDS: ClassVar[tuple[tuple[str, Any], ...]]

    def to_wire(self) -> list[Any]: ...

    def encode(self) -> bytes: ...


_packer_opts: dict[str, Any] = {"use_bin_type": True, "strict_types": True}


def _default(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


# One msgpack Packer per thread: building one per call (what packb does) costs more than packing
# a small structure. A Packer empties its buffer after every pack, also after a failed one.
_packers = threading.local()


def pack(obj: Any) -> bytes:
    """Encode a wire value (nested lists of int/bytes/str) as msgpack."""
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(default=_default, **_packer_opts)
    try:
        return packer.pack(obj)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode: {exc}") from exc


def _reject_hook(_pairs: Any) -> Any:
    raise CodecError("maps are not allowed in canonical encoding")


def unpack(data: bytes, max_size: int = MAX_MESSAGE) -> Any:
    """Decode msgpack bytes to a wire value and require that they are its canonical encoding."""
    if type(data) is not bytes:
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise CodecError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_reject_hook,
        )
    except CodecError:
        raise
    except Exception as exc:  # msgpack raises many types: ExtraData, ValueError, UnicodeDecodeError...
        raise CodecError(f"malformed msgpack: {type(exc).__name__}") from exc
    _check_types(value, 0)
    if pack(value) != data:
        raise CodecError("not the canonical encoding")
    return value


def unpack_stored(data: bytes) -> Any:
    """Decode bytes this node itself wrote to its state (never bytes from the wire).

    Plain msgpack: the canonical re-encoding check of `unpack` would double the cost of every
    state read for nothing, since only `pack` ever wrote these bytes. The ``from_wire`` of the
    structure still checks every field's type and range.
    """
    return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, object_pairs_hook=_reject_hook)


def _check_types(value: Any, depth: int) -> None:
    if depth > 32:
        raise CodecError("nesting deeper than 32")
    t = type(value)
    if t is list:
        types = set(map(type, value))  # at C speed: a fingerprint is thousands of ints
        if depth < 32 and types <= _WIRE_TYPES:
            for v in value:
                if type(v) is list:
                    _check_types(v, depth + 1)
            return
        for v in value:  # something to refuse: find the first offender, depth first
            _check_types(v, depth + 1)
    elif t not in _SCALARS:
        raise CodecError(f"type {t.__name__} is not allowed in canonical encoding")


def encode(obj: Any) -> bytes:
    """Canonical bytes of a structure."""
    return pack(obj.to_wire())


def decode(cls: type[T], data: bytes, max_size: int = MAX_MESSAGE) -> T:
    """Decode canonical bytes into ``cls``; any deviation raises CodecError."""
    return cls.from_wire(unpack(data, max_size))  # type: ignore[attr-defined,no-any-return]


def schema_rows(cls: Any) -> list[tuple[str, str]]:
    """(field, wire type) rows of a structure, for generated docs."""
    return [(name, wt.describe()) for name, wt in cls.WIRE_FIELDS]


Encoder = Callable[[Any], bytes]
