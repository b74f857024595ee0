"""attrchain: state."""
