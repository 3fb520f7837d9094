"""Installation script for refold."""
from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as fh:
    long_description = fh.read()

setup(
    name="refold",
    version="0.1.0",
    description=(
        "Fold and flatten structured parameters, the sensitivity of optima, "
        "and honest covariances for point estimates (paragami/vittles "
        "compatible)."
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["refold", "refold.*"]),
    python_requires=">=3.10",
    install_requires=["autograd>=1.6", "numpy>=1.24", "scipy>=1.11"],
    extras_require={
        "test": ["pytest", "hypothesis"],
        "bench": ["paragami==0.42", "vittles==0.173"],
        # Only for the JAX rows of benchmarks/default_paths_bench.py.
        "jax": ["jax", "lineax"],
        "plots": ["matplotlib"],
        "docs": ["sphinx"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Mathematics",
    ],
)
