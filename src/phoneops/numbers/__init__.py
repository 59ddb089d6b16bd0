"""Number core, pure logic: E.164 normalisation (`normalize`), link tokens, encryption at rest and the
blind index (`crypto`), and OS classification rules (`osrules`). No database, no settings: callers pass
regions and keys in."""
