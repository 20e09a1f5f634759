"""The Xet CAS protocol, served by the app itself: CAS tokens, xorb and shard verification, and the
reconstruction of uploaded files into the sha256 blob store (see docs/design.md, "Xet")."""
