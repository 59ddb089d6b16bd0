"""phoneops: phone-number audience hygiene and IMEI device checks."""

__version__ = "0.1.0"
