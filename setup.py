"""Packaging for tb-stagnation: a TensorBoard plugin that ranks layers by how much they move."""

from setuptools import find_packages, setup

setup(
    name="tb-stagnation",
    version="0.1.0",
    description="TensorBoard plugin: which of my layers are actually learning?",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["tb_stagnation", "tb_stagnation.*"]),
    package_data={"tb_stagnation": ["static/*"]},
    install_requires=[
        "tensorboard>=2.16",
        "werkzeug>=2.0",
        "protobuf>=3.20",
        "numpy>=1.23",
    ],
    extras_require={
        # The demo and the framework writer helpers; the plugin itself needs neither.
        "demo": ["tensorflow-cpu>=2.16"],
        "test": [
            "tensorflow-cpu>=2.16",
            "torch>=2.1",
            "tensorboardX>=2.6",
            "pytest>=7",
            "hypothesis>=6",
            "playwright>=1.40",
        ],
        "bench": ["tbparse>=0.0.9", "pandas>=1.5"],
    },
    entry_points={
        "tensorboard_plugins": ["stagnation = tb_stagnation.plugin:StagnationPlugin"],
        "console_scripts": ["tb-stagnation = tb_stagnation.cli:main"],
    },
    classifiers=[
        "Framework :: TensorFlow",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
