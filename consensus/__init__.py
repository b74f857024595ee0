"""attrchain consensus: Tendermint BFT as a pure state machine (see docs/consensus.md).

validators (sets, proposer selection), votes (vote sets, commits), evidence, bft_time, params,
events, machine (``step``) and round_state, signer (last-signed guard), wal and replay, and the
simulator (sim, sim_node, sim_byzantine, sim_check) used by the tests.
"""
