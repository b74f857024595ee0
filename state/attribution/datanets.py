"""Datanets and their curators: create_datanet, add_curator, remove_curator.

The creator of a datanet is its owner and its first curator. Only the owner adds or removes
curators, and the owner can never be removed, so every datanet always has a curator.
"""

from __future__ import annotations

from dataclasses import replace

from state import keys
from state.attribution.records import Curator, Datanet
from state.crypto import to_hex
from state.errors import require
from state.store import StateView
from state.context import BlockContext
from state.tx import AddCurator, CreateDatanet, RemoveCurator, Tx


def get_datanet(view: StateView, datanet_id: bytes) -> Datanet | None:
    return view.get_obj(keys.datanet_key(datanet_id), Datanet)


def require_datanet(view: StateView, datanet_id: bytes) -> Datanet:
    dn = get_datanet(view, datanet_id)
    require(dn is not None, "unknown_datanet", f"datanet {to_hex(datanet_id)} does not exist")
    assert dn is not None
    return dn


def put_datanet(view: StateView, datanet_id: bytes, dn: Datanet) -> None:
    view.put_obj(keys.datanet_key(datanet_id), dn)


def is_curator(view: StateView, datanet_id: bytes, address: bytes) -> bool:
    return view.get(keys.curator_key(datanet_id, address)) is not None


def process_create_datanet(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """create_datanet: a named datanet owned and curated by the sender; its id is the tx hash."""
    body: CreateDatanet = tx.body
    require(body.name != "", "empty_name", "a datanet needs a name")
    dn = Datanet(
        owner=tx.sender,
        name=body.name,
        metadata_uri=body.metadata_uri,
        bond_required=body.bond_required,
        created_height=ctx.height,
        curators=1,
        submitted=0,
        accepted=0,
        total_units=0,
        reward_per_unit=0,
        carry=0,
        rewards_in=0,
    )
    put_datanet(view, tx.hash, dn)
    view.put_obj(keys.curator_key(tx.hash, tx.sender), Curator(ctx.height))


def process_add_curator(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """add_curator: the owner adds a curator who is not one yet."""
    body: AddCurator = tx.body
    dn = require_datanet(view, body.datanet)
    require(tx.sender == dn.owner, "not_owner", "only the datanet owner manages curators")
    require(not is_curator(view, body.datanet, body.curator), "already_curator",
            f"{to_hex(body.curator)} already curates this datanet")
    view.put_obj(keys.curator_key(body.datanet, body.curator), Curator(ctx.height))
    put_datanet(view, body.datanet, replace(dn, curators=dn.curators + 1))


def process_remove_curator(view: StateView, tx: Tx, ctx: BlockContext) -> None:
    """remove_curator: the owner removes a curator; the owner itself cannot be removed."""
    body: RemoveCurator = tx.body
    dn = require_datanet(view, body.datanet)
    require(tx.sender == dn.owner, "not_owner", "only the datanet owner manages curators")
    require(body.curator != dn.owner, "cannot_remove_owner", "the owner is always a curator")
    require(is_curator(view, body.datanet, body.curator), "not_a_curator",
            f"{to_hex(body.curator)} does not curate this datanet")
    view.delete(keys.curator_key(body.datanet, body.curator))
    put_datanet(view, body.datanet, replace(dn, curators=dn.curators - 1))
