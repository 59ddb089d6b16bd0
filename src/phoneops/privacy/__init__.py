"""Privacy and data care: erasing one number everywhere, retention of raw events, backups."""
