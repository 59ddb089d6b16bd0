"""The one native module: bulk blind indexes (src/phoneops/numbers/_blindhash.c, docs/operations.md).

Optional: where it cannot be built (no C compiler or no OpenSSL headers), the install goes on and
`phoneops.numbers.crypto` uses its pure-Python path, which gives the same bytes more slowly."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "phoneops.numbers._blindhash",
            sources=["src/phoneops/numbers/_blindhash.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
