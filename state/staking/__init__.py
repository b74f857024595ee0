"""Staking domain: validators, delegations, unbonding, slashing, rewards and the validator set with
proposer priorities (docs/staking.md). Transaction handlers and begin/end block are in handlers.py."""
