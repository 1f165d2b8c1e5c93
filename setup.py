"""Only the C part of the build; everything else is in pyproject.toml.

payouts/_fastrender.c is the payout stage's per-row loop (see its header for why it is C). It links
against the system's libcrypto (Debian: libssl-dev at build time, libssl3 at run time; the Makefile
installs them with gcc when missing). app/registry/_residentcsv.c checks a residents file and encodes it
as binary COPY (see its header); it needs nothing beyond libc.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "payouts._fastrender",
            sources=["payouts/_fastrender.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
        Extension(
            "app.registry._residentcsv",
            sources=["app/registry/_residentcsv.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        ),
    ]
)
