"""Signed webhooks: admins register endpoints; job events are delivered, signed, retried for a day.

Modules:
- cli.py: `phoneops webhooks ...`: list, add, remove, enable/disable endpoints; send a test; deliveries;...
- models.py: Webhook endpoints, one delivery per (endpoint, event) and every attempt made for it
- router.py: Webhooks API (admin only): endpoints, deliveries with their attempts, test sends and resends
- schemas.py: Webhook API shapes
- service.py: Webhook endpoints and deliveries: register, record events, sign, deliver once, resend (docs/api.md)
- tasks.py: The delivery job and the job-end listener that turns finished and failed jobs into webhook events
- views.py: The webhooks page (admins): endpoints, a form to add one, recent deliveries with their attempts
"""
