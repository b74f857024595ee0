"""attrchain: devnet."""
