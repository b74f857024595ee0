"""attrchain: node."""
