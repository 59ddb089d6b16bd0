"""Generic building blocks free of domain logic: db, security, jobs, storage, csv, http."""
