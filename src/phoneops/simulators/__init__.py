"""One ASGI app per provider, speaking its wire protocol (see docs/providers/), for tests, demo and benches.

Serve one in-process with `phoneops.simulators._server.serve_in_thread(app)`, or in its own process with
`python -m phoneops.simulators NAME --port N`. Introspection lives under `/_sim/` and is never part of the
provider's protocol. Nothing here runs unless asked for.
"""
