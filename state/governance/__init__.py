"""Governance (docs/governance.md): stake-weighted proposals, deposits, votes, the community pool."""
