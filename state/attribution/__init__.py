"""Attribution domain: datanets, contributions, fingerprints and duplicate control, models, adapters, agents,
inference fee split, receipts and reward pools (docs/attribution.md). Transaction handlers are in handlers.py."""
