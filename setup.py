"""Packaging details pyproject.toml cannot say: the configs in conf/ (kept at the top of the
clone) are installed as the package ``vaelab.conf``, so an installed vaelab runs anywhere; and
vaelab's Hydra plugin (the resumable Optuna sweeper of ``sweep=optuna``) is installed into
Hydra's namespace package ``hydra_plugins``, where Hydra looks for plugins."""

from setuptools import find_namespace_packages, find_packages, setup

CONFIG_GROUPS = [f"vaelab.conf.{group}" for group in find_namespace_packages("conf")]

setup(
    packages=[
        *find_packages("src", include=["vaelab*"]),
        *find_namespace_packages("src", include=["hydra_plugins*"]),
        "vaelab.conf",
        *CONFIG_GROUPS,
    ],
    package_dir={"": "src", "vaelab.conf": "conf"},
    package_data={package: ["*.yaml"] for package in ["vaelab.conf", *CONFIG_GROUPS]},
)
