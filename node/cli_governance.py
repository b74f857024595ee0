"""Command-line forms of the governance transactions (used by node/cli_client.py).

    attrchain tx submit_proposal --type param_change --change attribution.matched_bps=7000 \\
        --title "..." [--summary "..."] --deposit N --key k.json --wait
    attrchain tx submit_proposal --type community_pool_spend --recipient 0x.. --amount N ...
    attrchain tx submit_proposal --type software_upgrade --name v2 --height H [--info TEXT] ...
    attrchain tx submit_proposal --type text | cancel_software_upgrade ...
    attrchain tx deposit --proposal ID --amount N --key k.json
    attrchain tx vote --proposal ID --option yes|no|abstain|no_with_veto --key k.json
The proposal's content is built from these options and encoded canonically
(state/governance/records.py); `--wait` also prints the new proposal's id.
"""

from __future__ import annotations

import argparse
from typing import Any

from state.codec import pack
from state.crypto import from_hex, to_hex
from state.governance import records as R

KINDS = ("submit_proposal", "vote")  # deposit needs nothing beyond its fields
DERIVED = {"submit_proposal": ("kind", "content"), "vote": ("option",)}
HELP = {"submit_proposal": "submit a governance proposal with an initial deposit",
        "deposit": "add to a proposal's deposit", "vote": "vote on a proposal in its voting period"}
TYPE_BY_NAME = {name: kind for kind, name in R.KIND_NAMES.items()}


class GovernanceArgError(ValueError):
    """Options that do not make a proposal of the chosen type."""


def _change(text: str) -> tuple[str, int]:
    path, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError("expected SECTION.FIELD=VALUE, e.g. attribution.matched_bps=7000")
    try:
        return path.strip(), int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{path}: the value must be an integer") from None


def _address(text: str) -> bytes:
    try:
        return from_hex(text, 20)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"recipient: {exc}") from None


def add_options(p: argparse.ArgumentParser, kind: str) -> None:
    if kind == "submit_proposal":
        p.add_argument("--type", dest="proposal_type", required=True, choices=sorted(TYPE_BY_NAME),
                       help="what the proposal does when it passes")
        p.add_argument("--change", dest="changes", type=_change, action="append", default=[],
                       metavar="SECTION.FIELD=VALUE", help="param_change: repeat for each param (see `query params`)")
        p.add_argument("--recipient", type=_address, metavar="0xADDR", help="community_pool_spend: who is paid")
        p.add_argument("--amount", type=int, metavar="N", help="community_pool_spend: how much")
        p.add_argument("--name", dest="upgrade_name", metavar="NAME", help="software_upgrade: the upgrade's name")
        p.add_argument("--height", dest="upgrade_height", type=int, metavar="H",
                       help="software_upgrade: the block at which nodes stop unless they provide NAME")
        p.add_argument("--info", dest="upgrade_info", default="", metavar="TEXT",
                       help="software_upgrade: where to get the software, for operators")
    elif kind == "vote":
        p.add_argument("--option", required=True, choices=sorted(R.OPTION_BY_NAME), help="your vote")


def _need(value: Any, flag: str, ptype: str) -> Any:
    if value is None:
        raise GovernanceArgError(f"--type {ptype} needs {flag}")
    return value


def derived_fields(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The body fields of ``kind`` computed from the governance options."""
    if kind == "vote":
        return {"option": R.OPTION_BY_NAME[args.option]}
    ptype = args.proposal_type
    proposal_kind = TYPE_BY_NAME[ptype]
    if proposal_kind == R.PARAM_CHANGE:
        content: Any = R.ParamChangeContent(tuple(_need(args.changes or None, "--change", ptype)))
    elif proposal_kind == R.COMMUNITY_POOL_SPEND:
        content = R.CommunityPoolSpendContent(_need(args.recipient, "--recipient", ptype),
                                              _need(args.amount, "--amount", ptype))
    elif proposal_kind == R.SOFTWARE_UPGRADE:
        content = R.SoftwareUpgradeContent(_need(args.upgrade_name, "--name", ptype),
                                           _need(args.upgrade_height, "--height", ptype), args.upgrade_info)
    else:
        content = R.CONTENT_TYPES[proposal_kind]()
    return {"kind": proposal_kind, "content": pack(content.to_wire())}


def find_proposal_id(client: Any, tx_hash: bytes, proposer: bytes) -> int | None:
    """The id of the proposal a committed submit_proposal created (among its proposer's newest)."""
    wanted, by = to_hex(tx_hash), {"proposer": to_hex(proposer)}
    total = client.call("proposals", {**by, "per_page": 1})["total"]
    last = (total + 99) // 100
    for page in range(last, max(last - 2, 0), -1):  # the newest are on the last pages
        for p in client.call("proposals", {**by, "page": page, "per_page": 100})["proposals"]:
            if p["tx_hash"] == wanted:
                return int(p["id"])
    return None
