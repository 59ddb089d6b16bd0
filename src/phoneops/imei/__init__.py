"""Device checks: IMEI orders at GSM Fusion and DHRU Fusion resellers (clients, result parsing, IMEI validation,
services, batches)."""
