"""The reference model: an infini-gram-style text generator over a suffix array of a datanet mix
(docs/gateway.md, "Reference model"): `attrchain model build | serve`."""
