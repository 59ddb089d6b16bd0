"""Device checks: GSM Fusion IMEI orders (client, result parsing, IMEI validation, services, batches)."""
