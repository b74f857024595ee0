"""Peer exchange, pure parts (node/pex.py): which addresses may be learned, the bounds of the address
book (one lying peer cannot fill it or redirect a known peer), answer parsing and serving."""

from __future__ import annotations

import random

import pytest

from node.pex import (MAX_ANSWER_ADDRS, MAX_FAILURES, AddressBook, PeerExchange, advertised_address,
                      check_address, parse_answer)
from p2p.identity import peer_id_from_seed
from p2p.scoring import Offence
from state.codec import CodecError, pack, unpack

IDS = [peer_id_from_seed(i.to_bytes(2, "big") * 16) for i in range(600)]
SELF = IDS[0]


def public(i: int) -> str:
    return f"9.8.{i // 250}.{i % 250 + 1}:26656"


@pytest.mark.parametrize("host, private_ok, refused", [
    ("8.8.8.8", False, None), ("2001:4860::8888", False, None),
    ("127.0.0.1", False, "private"), ("10.1.2.3", False, "private"), ("192.168.1.1", False, "private"),
    ("127.0.0.1", True, None), ("10.1.2.3", True, None), ("::1", False, ""),
    ("0.0.0.0", True, "unroutable"), ("224.0.0.1", True, "unroutable"), ("169.254.1.1", True, "unroutable"),
    ("240.0.0.1", True, "unroutable"), ("example.com", True, "not an IP"),
])
def test_check_address(host: str, private_ok: bool, refused: str | None) -> None:
    why = check_address(host, 26656, private_ok)
    assert (why is None) if refused is None else (why is not None and refused in why)


def test_one_peer_cannot_fill_the_book_or_redirect_known_peers() -> None:
    book = AddressBook(SELF, allow_private=False, capacity=64, per_source=16)
    assert book.add(IDS[1], "9.9.100.7:26656", "", shareable=True) is None  # configured
    liar = IDS[2]
    refused = [book.add(IDS[10 + i], public(i), liar) for i in range(500)]
    assert book.from_source(liar) == 16 and len(book) == 17
    assert refused.count("too many addresses from this peer") == 484
    # a known peer keeps its address; ourselves, bad ids and private hosts never enter
    assert book.add(IDS[1], "9.9.113.66:1", liar) is None and book.entries[IDS[1]].addr == "9.9.100.7:26656"
    assert book.add(SELF, public(999), IDS[3]) == "ourselves"
    assert book.add("not-a-peer", public(998), IDS[3]) == "not a peer id"
    assert "private" in (book.add(IDS[599], "10.0.0.1:26656", IDS[3]) or "")
    # many honest sources still fill the book only up to its capacity
    for s in range(3, 10):
        for i in range(16):
            book.add(IDS[100 + 16 * s + i], public(100 + 16 * s + i), IDS[s])
    assert len(book) == 64
    assert book.add(IDS[598], public(597), IDS[598]) == "address book full"


def test_failed_addresses_back_off_then_leave() -> None:
    book = AddressBook(SELF, allow_private=True)
    book.add(IDS[5], "127.0.0.1:1", IDS[4])
    assert book.candidates(set(), 0.0) == [IDS[5]]
    book.dialled(IDS[5], False, 100.0)
    assert book.candidates(set(), 100.0) == [] and book.candidates(set(), 106.0) == [IDS[5]]
    for _ in range(MAX_FAILURES - 1):
        book.dialled(IDS[5], False, 200.0)
    assert IDS[5] not in book.entries
    book.add(IDS[6], "127.0.0.1:2", IDS[4])
    assert not book.entries[IDS[6]].shareable
    book.dialled(IDS[6], True, 1.0)
    assert book.entries[IDS[6]].shareable and book.candidates({IDS[6]}, 1.0) == []


def test_parse_answer_refuses_oversized_and_malformed() -> None:
    ok = [[IDS[1], "1.2.3.4:5"]]
    assert parse_answer(pack(["addrs", ok])) == [(IDS[1], "1.2.3.4:5")]
    for bad in (pack(["addrs", ok * (MAX_ANSWER_ADDRS + 1)]), pack(["addrs", [[IDS[1], 5]]]),
                pack(["nope", ok]), pack(["addrs", "x"]), b"\xc1", pack(["addrs", [["x" * 9000, "y"]]])):
        with pytest.raises(CodecError):
            parse_answer(bad)


def exchange(book: AddressBook, remote_ip: str | None, reports: list[tuple[str, Offence]]) -> PeerExchange:
    async def never(*args: object) -> bytes:
        raise AssertionError("not used")

    return PeerExchange(book, "", 4, lambda: [], set, lambda peer: remote_ip, never, never,  # type: ignore[arg-type]
                        lambda peer, offence, detail: reports.append((peer, offence)), lambda peer: False)


def test_serve_shares_only_believed_addresses_and_checks_advertised_ip() -> None:
    reports: list[tuple[str, Offence]] = []
    book = AddressBook(SELF, allow_private=False)
    book.add(IDS[1], "9.9.100.1:26656", "", shareable=True)     # configured
    book.add(IDS[2], "9.9.100.2:26656", IDS[1])                 # learned, never dialled: not shared
    pex = exchange(book, "9.9.100.9", reports)
    pex._rng = random.Random(1)
    # the requester advertises an address on another host: not kept (it could point us anywhere)
    answer = unpack(pex.serve(IDS[3], pack(["pex", "9.9.100.50:26656"])))
    assert answer == ["addrs", [[IDS[1], "9.9.100.1:26656"]]] and IDS[3] not in book.entries
    # the same host as its connection: kept and shared with others, never back to itself
    assert unpack(pex.serve(IDS[3], pack(["pex", "9.9.100.9:26656"])))[1] == [[IDS[1], "9.9.100.1:26656"]]
    assert sorted(unpack(pex.serve(IDS[4], pack(["pex", ""])))[1]) == sorted([
        [IDS[1], "9.9.100.1:26656"], [IDS[3], "9.9.100.9:26656"]])
    assert unpack(pex.serve(IDS[4], b"\x93\x01")) == ["error", "malformed request"]
    assert reports == [(IDS[4], Offence.MALFORMED)]


def test_a_liars_many_addresses_do_not_come_first() -> None:
    book = AddressBook(SELF, allow_private=True)
    for i in range(16):
        book.add(IDS[100 + i], f"127.0.0.1:{1 + i}", IDS[2])
    book.add(IDS[599], "127.0.0.1:26656", IDS[1])
    assert IDS[599] in book.candidates(set(), 0.0)[:2]


def test_what_a_node_advertises() -> None:
    assert advertised_address("0.0.0.0", 26656, "") == ("", None)  # nothing dialable to say
    assert advertised_address("9.9.1.2", 26656, "") == ("9.9.1.2:26656", None)
    assert advertised_address("0.0.0.0", 26656, "9.9.113.7:30000") == ("9.9.113.7:30000", None)
    addr, why = advertised_address("0.0.0.0", 26656, "node.example.com:26656")
    assert addr == "node.example.com:26656" and why is not None and "not an IP" in why  # warned at start


@pytest.mark.trio
async def test_a_node_behind_nat_is_passed_on_at_its_external_address() -> None:
    """A node behind NAT listens on 0.0.0.0:26656 (a private 10.0.0.5 inside) and has its router forward
    public 9.9.113.7:30000. It asks the seed, advertising its external address; the seed sees the
    connection come from 9.9.113.7, keeps the address and gives it to a third node (never the
    private one). Advertising the private listen address instead is not kept."""
    nat_id, seed_id, other_id = IDS[7], IDS[8], IDS[9]
    reports: list[tuple[str, Offence]] = []
    seed = exchange(AddressBook(seed_id, allow_private=False), "9.9.113.7", reports)

    def behind_nat(advertised: str) -> PeerExchange:
        async def ask_seed(peer: str, payload: bytes) -> bytes:
            assert peer == seed_id
            return seed.serve(nat_id, payload)

        async def no_dial(spec: object) -> bool:
            return False
        return PeerExchange(AddressBook(nat_id, allow_private=False), advertised, 1, lambda: [seed_id], set,
                            lambda peer: None, ask_seed, no_dial,  # type: ignore[arg-type]
                            lambda peer, offence, detail: reports.append((peer, offence)), lambda peer: False)

    await behind_nat(advertised_address("10.0.0.5", 26656, "")[0]).round()
    assert nat_id not in seed.book.entries  # its private address is not where the connection comes from
    await behind_nat(advertised_address("0.0.0.0", 26656, "9.9.113.7:30000")[0]).round()
    assert unpack(seed.serve(other_id, pack(["pex", ""]))) == ["addrs", [[nat_id, "9.9.113.7:30000"]]]
    assert reports == []
