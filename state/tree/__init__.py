"""The authenticated state tree: a paged, collapsed binary sparse Merkle tree with proofs (docs/state_tree.md)."""
