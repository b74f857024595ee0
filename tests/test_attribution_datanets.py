"""create_datanet, add_curator, remove_curator: one rule per test."""

from __future__ import annotations

from attribution_kit import KEYS, World, rejected, world_fixture  # noqa: F401

from state import keys, queries
from state.attribution.records import Datanet
from state.tx import AddCurator, CreateDatanet, RemoveCurator

OWNER, CURATOR, OTHER = KEYS[0], KEYS[1], KEYS[2]
MISSING = b"\x99" * 32


def test_create_datanet_makes_creator_owner_and_curator(world: World) -> None:
    tx = world.ok(OWNER, CreateDatanet("news", "ipfs://news", 250))
    dn = world.view().get_obj(keys.datanet_key(tx.hash), Datanet)
    assert dn is not None and dn.owner == OWNER.address and dn.bond_required == 250
    assert dn.curators == 1 and dn.total_units == 0 and dn.accepted == 0
    info = queries.get_datanet(world.chain.db, tx.hash)
    assert info is not None
    assert info["curators"] == ["0x" + OWNER.address.hex()]
    assert info["name"] == "news" and info["metadata_uri"] == "ipfs://news"


def test_create_datanet_rejects_empty_name(world: World) -> None:
    rejected(world, OWNER, CreateDatanet("", "ipfs://x", 0), "empty_name")


def test_owner_adds_and_removes_curators(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("news", "", 0)).hash
    world.ok(OWNER, AddCurator(d, CURATOR.address))
    assert queries.get_datanet(world.chain.db, d)["curators"] == sorted(  # type: ignore[index]
        "0x" + k.address.hex() for k in (OWNER, CURATOR))
    world.ok(OWNER, RemoveCurator(d, CURATOR.address))
    info = queries.get_datanet(world.chain.db, d)
    assert info is not None and info["curators"] == ["0x" + OWNER.address.hex()]
    dn = world.view().get_obj(keys.datanet_key(d), Datanet)
    assert dn is not None and dn.curators == 1


def test_add_curator_rejections(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("news", "", 0)).hash
    world.ok(OWNER, AddCurator(d, CURATOR.address))
    rejected(world, OWNER, AddCurator(MISSING, OTHER.address), "unknown_datanet")
    rejected(world, CURATOR, AddCurator(d, OTHER.address), "not_owner")
    rejected(world, OWNER, AddCurator(d, CURATOR.address), "already_curator")
    rejected(world, OWNER, AddCurator(d, OWNER.address), "already_curator")


def test_remove_curator_rejections(world: World) -> None:
    d = world.ok(OWNER, CreateDatanet("news", "", 0)).hash
    world.ok(OWNER, AddCurator(d, CURATOR.address))
    rejected(world, OWNER, RemoveCurator(MISSING, CURATOR.address), "unknown_datanet")
    rejected(world, CURATOR, RemoveCurator(d, CURATOR.address), "not_owner")
    rejected(world, OWNER, RemoveCurator(d, OWNER.address), "cannot_remove_owner")
    rejected(world, OWNER, RemoveCurator(d, OTHER.address), "not_a_curator")
