"""The OpenAI-compatible attribution gateway (docs/gateway.md): `attrchain gateway ...`."""
