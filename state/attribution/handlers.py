"""Attribution state transition (DESIGN section 3): datanets, contributions, models, inference.

Handlers are registered in HANDLERS (body type -> handler) and dispatched by state.transition.
Each kind has one small `process_<kind>(view, tx, ctx)` that checks its rule first and mutates
second; the rules themselves are documented in docs/attribution.md.
"""

from __future__ import annotations

from typing import Any

from state.attribution.contributions import (
    process_claim_rewards,
    process_contribute,
    process_review,
    process_transfer_contribution,
)
from state.attribution.commitments import process_commit_contribution
from state.attribution.datanets import process_add_curator, process_create_datanet, process_remove_curator
from state.attribution.inference import process_infer
from state.attribution.models import (
    process_agent_action,
    process_register_adapter,
    process_register_agent,
    process_register_model,
)
from state.tx import (
    AddCurator,
    AgentAction,
    ClaimRewards,
    CommitContribution,
    Contribute,
    CreateDatanet,
    Infer,
    RegisterAdapter,
    RegisterAgent,
    RegisterModel,
    RemoveCurator,
    Review,
    TransferContribution,
)

HANDLERS: dict[type[Any], Any] = {
    CreateDatanet: process_create_datanet,
    AddCurator: process_add_curator,
    RemoveCurator: process_remove_curator,
    CommitContribution: process_commit_contribution,
    Contribute: process_contribute,
    Review: process_review,
    TransferContribution: process_transfer_contribution,
    RegisterModel: process_register_model,
    RegisterAdapter: process_register_adapter,
    RegisterAgent: process_register_agent,
    AgentAction: process_agent_action,
    Infer: process_infer,
    ClaimRewards: process_claim_rewards,
}
