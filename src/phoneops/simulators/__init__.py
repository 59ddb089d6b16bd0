"""One ASGI app per provider, speaking its wire protocol (see docs/providers/), for tests, demo and benches.

Modules:
- __main__.py: Run one simulator in its own process: `python -m phoneops.simulators NAME [--port P] [--knob...
- _kit.py: What the simulators share: `SimState`, every simulator's state scaffold, and `SimCore`, the...
- _server.py: Serve an ASGI app over real HTTP: in a background thread (tests) or in its own process (benches)
- demo.py: The demo's providers: each provider without credentials gets its simulator, with seeded demo data
- dhru.py: DHRU Fusion reseller API simulator (docs/providers/dhru.md)
- gsm_fusion.py: GSM Fusion XML API simulator (docs/providers/gsm_fusion.md)
- hlr_batches.py: The batch host of the hlrlookup.com simulator (docs/providers/hlr_lookup.md, batch host)
- hlr_lookup.py: hlrlookup.com API v2 simulator (docs/providers/hlr_lookup.md)
- hlr_outcomes.py: Records for the hlrlookup.com simulator: deterministic outcomes and the request / CSV formats
- messagewhiz.py: MessageWhiz (MMD Smart) SMS API simulator (docs/providers/messagewhiz.md)
- ongage.py: Ongage contacts API simulator (docs/providers/ongage.md)
- voluum.py: Voluum API simulator (docs/providers/voluum.md)
- voluum_data.py: The Voluum simulator's dataset: seeded visits, conversions, campaigns and offers, and the report...
"""
