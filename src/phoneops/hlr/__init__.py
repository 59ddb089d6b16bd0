"""HLR live checks: the hlrlookup.com client (`client`, `wire`), batch lookups and risky operators."""
