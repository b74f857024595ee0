"""attrchain: consensus."""
