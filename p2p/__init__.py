"""attrchain: p2p."""
