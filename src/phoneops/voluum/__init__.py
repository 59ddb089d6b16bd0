"""Voluum: the ad tracker whose traffic and conversions feed number classification (docs/providers/voluum.md).

`phoneops.voluum.client.VoluumClient` speaks the wire protocol (session tokens, reports, conversions, entities,
cost pushes); `phoneops.voluum.wire` holds its errors, row types and parameter helpers.
"""
