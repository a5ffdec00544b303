"""A child's record as the law expects: identifier hashes, disclosures, subject access, erasure,
retention and the access log (docs/contract.md, "A child's record, as the law expects";
docs/operating.md, "Data protection")."""
