"""List cleaning: uploaded CSV/TSV/xlsx files cleaned against the number lists, and encryption files."""
