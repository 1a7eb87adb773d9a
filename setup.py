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
        # Checkpoint readers, one extra per format family (`tb-stagnation checkpoints` names the
        # one it misses); tqdm draws their progress bar, threadpoolctl holds BLAS to one thread
        # for the import's float64 sums (checkpoints/movement.py). The plugin itself needs none of them.
        "safetensors": ["safetensors>=0.4", "tqdm>=4.60", "threadpoolctl>=3"],
        "torch": ["torch>=2.1", "tqdm>=4.60", "threadpoolctl>=3"],
        "tensorflow": ["tensorflow-cpu>=2.16", "tqdm>=4.60", "threadpoolctl>=3"],
        "h5py": ["h5py>=3.8", "tqdm>=4.60", "threadpoolctl>=3"],
        "lightning": ["lightning>=2.1", "tqdm>=4.60", "threadpoolctl>=3"],
        "transformers": ["transformers>=4.42", "accelerate>=0.26", "safetensors>=0.4", "tqdm>=4.60", "threadpoolctl>=3"],
        # LoRA / PEFT adapters: their config is read with peft's own loader.
        "peft": ["peft>=0.10", "safetensors>=0.4", "tqdm>=4.60", "threadpoolctl>=3"],
        # Checkpoints and logs in object storage, read by fsspec in byte ranges.
        "s3": ["s3fs>=2023.1", "tqdm>=4.60"],
        "gcs": ["gcsfs>=2023.1", "tqdm>=4.60"],
        # `tb-stagnation checkpoints --ray`: the import as Ray tasks.
        "ray": ["ray>=2.9", "tqdm>=4.60"],
        # Analysis.to_pandas (tb_stagnation.analyse in a notebook).
        "pandas": ["pandas>=1.5"],
        # Record CRCs checked by google-crc32c's compiled code, 1.4-9x faster than the numpy fallback.
        "fast": ["google-crc32c>=1.5"],
        # The demo and the framework writer helpers.
        "demo": ["tensorflow-cpu>=2.16", "tqdm>=4.60"],
        "test": [
            "tensorflow-cpu>=2.16",
            "torch>=2.1",
            "tensorboardX>=2.6",
            "safetensors>=0.4",
            "h5py>=3.8",
            "lightning>=2.1",
            "transformers>=4.42",
            "accelerate>=0.26",
            "tqdm>=4.60",
            "psutil>=5.9",
            "google-crc32c>=1.5",
            "pytest>=7",
            "hypothesis>=6",
            "playwright>=1.40",
            "pandas>=1.5",
            "peft>=0.10",
            "s3fs>=2023.1",
            "moto[server]>=5",
            "ray>=2.9",
            "threadpoolctl>=3",
        ],
        "bench": ["tbparse>=0.0.9", "pandas>=1.5", "google-crc32c>=1.5"],
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
