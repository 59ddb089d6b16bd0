"""Signed webhooks: admins register endpoints; job events are delivered, signed, retried for a day.

- models.py: endpoints, deliveries and their attempts.
- service.py: register/list/disable endpoints, record events, sign and deliver, resend.
- tasks.py: the delivery job (retries with a growing delay, from the job queue only) and the job-end listener.
- router.py / views.py / cli.py: API, the admin page, `phoneops webhooks ...`.
"""
