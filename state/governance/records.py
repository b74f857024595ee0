"""Governance state records, proposal contents and their typed accessors (docs/governance.md).

Every record is a canonical structure stored under a key built by state.keys:
- ``GovMeta``        at gov_meta_key(): the next proposal id
- ``Proposal``       at proposal_key(id): kind, content, status, periods, deposits, final tally
- ``DepositRecord``  at proposal_deposit_key(id, depositor) while the deposit is escrowed
- ``VoteRecord``     at proposal_vote_key(id, voter); kept after the tally as the record of the vote
- ``QueueEntry``     at deposit_queue_key / voting_queue_key (end height, id): what end_block reads
- ``UpgradePlan``    at upgrade_plan_key(); ``UpgradeDone`` at upgrade_done_key(name)
Deposits sit in the GOVERNANCE_ESCROW module account; the community pool is the COMMUNITY_POOL one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from state import keys
from state.accounts import module_address
from state.codec import ADDRESS, HASH, U8, U64, Bytes, List, Nested, Str, Tuple, canonical, f, unpack, unpack_stored
from state.store import StateView

GOVERNANCE_ESCROW = module_address("governance")
COMMUNITY_POOL = module_address("community_pool")

# proposal kinds (SubmitProposal.kind)
TEXT = 1
PARAM_CHANGE = 2
COMMUNITY_POOL_SPEND = 3
SOFTWARE_UPGRADE = 4
CANCEL_SOFTWARE_UPGRADE = 5
KIND_NAMES = {TEXT: "text", PARAM_CHANGE: "param_change", COMMUNITY_POOL_SPEND: "community_pool_spend",
              SOFTWARE_UPGRADE: "software_upgrade", CANCEL_SOFTWARE_UPGRADE: "cancel_software_upgrade"}

# vote options (Cosmos x/gov numbering)
YES = 1
ABSTAIN = 2
NO = 3
NO_WITH_VETO = 4
OPTION_NAMES = {YES: "yes", ABSTAIN: "abstain", NO: "no", NO_WITH_VETO: "no_with_veto"}
OPTION_BY_NAME = {name: option for option, name in OPTION_NAMES.items()}

# proposal status
DEPOSIT_PERIOD = 1
VOTING_PERIOD = 2
PASSED = 3
REJECTED = 4
FAILED = 5  # passed, but its content could not be executed (nothing of it was applied)
STATUS_NAMES = {DEPOSIT_PERIOD: "deposit_period", VOTING_PERIOD: "voting_period", PASSED: "passed",
                REJECTED: "rejected", FAILED: "failed"}
STATUS_BY_NAME = {name: status for status, name in STATUS_NAMES.items()}

# what happened to the deposits
DEPOSITS_HELD = 0
DEPOSITS_REFUNDED = 1
DEPOSITS_BURNED = 2
DEPOSIT_FATE_NAMES = {DEPOSITS_HELD: "held", DEPOSITS_REFUNDED: "refunded", DEPOSITS_BURNED: "burned"}

MAX_PARAM_CHANGES = 32
PARAM_PATH = Str(96)  # "section.field"
UPGRADE_NAME = Str(64)


# ---- proposal contents (SubmitProposal.content is the canonical bytes of one of these) -------
@canonical
class TextContent:
    """A signal: nothing is executed when it passes."""


@canonical
class ParamChangeContent:
    """New values of genesis params by path ``section.field`` (all applied together, or none)."""

    changes: tuple[tuple[str, int], ...] = f(List(Tuple((PARAM_PATH, U64)), MAX_PARAM_CHANGES))


@canonical
class CommunityPoolSpendContent:
    recipient: bytes = f(ADDRESS)
    amount: int = f(U64)


@canonical
class SoftwareUpgradeContent:
    """At block ``height`` every node stops unless its software provides ``name``."""

    name: str = f(UPGRADE_NAME)
    height: int = f(U64)
    info: str = f(Str(256))


@canonical
class CancelSoftwareUpgradeContent:
    """Removes the scheduled upgrade, if any."""


CONTENT_TYPES: dict[int, type[Any]] = {
    TEXT: TextContent,
    PARAM_CHANGE: ParamChangeContent,
    COMMUNITY_POOL_SPEND: CommunityPoolSpendContent,
    SOFTWARE_UPGRADE: SoftwareUpgradeContent,
    CANCEL_SOFTWARE_UPGRADE: CancelSoftwareUpgradeContent,
}


def decode_content(kind: int, content: bytes) -> Any:
    """The content structure of ``kind`` from its canonical bytes (CodecError otherwise)."""
    return CONTENT_TYPES[kind].from_wire(unpack(content))  # type: ignore[attr-defined]


# ---- records -------------------------------------------------------------------------------
@canonical
class GovMeta:
    next_proposal_id: int = f(U64)


@canonical
class Tally:
    """Bonded stake behind each option, and the bonded stake it is measured against."""

    yes: int = f(U64)
    abstain: int = f(U64)
    no: int = f(U64)
    no_with_veto: int = f(U64)
    bonded: int = f(U64)

    @property
    def voted(self) -> int:
        return self.yes + self.abstain + self.no + self.no_with_veto


EMPTY_TALLY = Tally(0, 0, 0, 0, 0)


@canonical
class Proposal:
    id: int = f(U64)
    kind: int = f(U8)
    title: str = f(Str(140))
    summary: str = f(Str(4096))
    content: bytes = f(Bytes())
    proposer: bytes = f(ADDRESS)
    tx_hash: bytes = f(HASH)
    status: int = f(U8)
    submit_height: int = f(U64)
    deposit_end_height: int = f(U64)
    voting_start_height: int = f(U64)  # 0 while in the deposit period
    voting_end_height: int = f(U64)  # tallied in end_block of this height
    total_deposit: int = f(U64)
    deposit_fate: int = f(U8)
    final_tally: Tally = f(Nested(Tally))
    result: str = f(Str(512))  # why it passed, was rejected or failed


@canonical
class DepositRecord:
    amount: int = f(U64)


@canonical
class VoteRecord:
    option: int = f(U8)
    height: int = f(U64)  # when it was (last) cast


@canonical
class QueueEntry:
    """The key names the entry."""


@canonical
class UpgradePlan:
    name: str = f(UPGRADE_NAME)
    height: int = f(U64)
    info: str = f(Str(256))
    proposal: int = f(U64)


@canonical
class UpgradeDone:
    height: int = f(U64)


# ---- accessors -----------------------------------------------------------------------------
def _decode(cls: type[Any], raw: bytes) -> Any:
    return cls.from_wire(unpack_stored(raw))  # type: ignore[attr-defined]


def next_proposal_id(view: StateView) -> int:
    meta = view.get_obj(keys.gov_meta_key(), GovMeta)
    return meta.next_proposal_id if meta is not None else 1


def set_next_proposal_id(view: StateView, value: int) -> None:
    view.put_obj(keys.gov_meta_key(), GovMeta(value))


def get_proposal(view: StateView, proposal_id: int) -> Proposal | None:
    return view.get_obj(keys.proposal_key(proposal_id), Proposal)


def set_proposal(view: StateView, p: Proposal) -> None:
    view.put_obj(keys.proposal_key(p.id), p)


def iter_proposals(view: StateView) -> Iterator[Proposal]:
    """Every stored proposal, by id."""
    for _, raw in view.iter_prefix(keys.proposals_prefix()):
        yield _decode(Proposal, raw)


def get_deposit(view: StateView, proposal_id: int, depositor: bytes) -> int:
    d = view.get_obj(keys.proposal_deposit_key(proposal_id, depositor), DepositRecord)
    return d.amount if d is not None else 0


def set_deposit(view: StateView, proposal_id: int, depositor: bytes, amount: int) -> None:
    key = keys.proposal_deposit_key(proposal_id, depositor)
    if amount == 0:
        view.delete(key)
    else:
        view.put_obj(key, DepositRecord(amount))


def deposits_of(view: StateView, proposal_id: int) -> list[tuple[bytes, int]]:
    """(depositor, amount) of one proposal, in depositor-address order."""
    return [(k[-20:], _decode(DepositRecord, raw).amount)
            for k, raw in view.iter_prefix(keys.proposal_deposit_key(proposal_id, b""))]


def get_vote(view: StateView, proposal_id: int, voter: bytes) -> VoteRecord | None:
    return view.get_obj(keys.proposal_vote_key(proposal_id, voter), VoteRecord)


def set_vote(view: StateView, proposal_id: int, voter: bytes, vote: VoteRecord) -> None:
    view.put_obj(keys.proposal_vote_key(proposal_id, voter), vote)


def votes_of(view: StateView, proposal_id: int) -> list[tuple[bytes, VoteRecord]]:
    """(voter, vote) of one proposal, in voter-address order."""
    return [(k[-20:], _decode(VoteRecord, raw))
            for k, raw in view.iter_prefix(keys.proposal_vote_key(proposal_id, b""))]


def queue_add(view: StateView, key: bytes) -> None:
    view.put_obj(key, QueueEntry())


def queued(view: StateView, prefix: bytes) -> list[int]:
    """Proposal ids under one queue prefix (``keys.deposit_queue_prefix(h)`` or
    ``keys.voting_queue_prefix(h)``), by id."""
    return [int.from_bytes(k[-8:], "big") for k, _ in view.iter_prefix(prefix)]


def get_upgrade_plan(view: StateView) -> UpgradePlan | None:
    return view.get_obj(keys.upgrade_plan_key(), UpgradePlan)


def get_upgrade_done(view: StateView, name: str) -> UpgradeDone | None:
    return view.get_obj(keys.upgrade_done_key(name), UpgradeDone)
