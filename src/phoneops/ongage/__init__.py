"""Email list sync: Ongage client, conversion sync and paced CSV jobs."""
