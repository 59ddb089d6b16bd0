"""Email list sync: Ongage client, conversion sync and paced CSV jobs.

Modules:
- cli.py: `phoneops ongage ...`: the conversion sync and CSV jobs
- client.py: Ongage contacts API client (wire protocol only; docs/providers/ongage.md)
- metrics.py: Prometheus gauges of the Ongage domain: conversion contacts by status, CSV jobs by status, rows left
- models.py: Tables of the Ongage domain: the sync state of each converted number's conversion, sync runs,...
- provider.py: Ongage bound to our settings, and what the conversion sync and the CSV jobs share
- router.py: Ongage API: the conversion sync (runs, contacts that failed, re-queue) and CSV jobs
- schemas.py: API shapes of the Ongage domain
- service_csv.py: Ongage CSV jobs: an uploaded CSV of contacts sent to Ongage at a chosen pace by a resumable worker
- service_sync.py: Converted numbers sent to Ongage as contacts, each marked from its own result
- tasks.py: Background work of the Ongage domain
- unsubscribes.py: Ongage unsubscribes -> opt-outs (docs/optouts.md)
- views.py: Ongage pages: the conversion sync (counts, failures, runs) and CSV jobs (upload, pace,...
"""
