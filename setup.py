"""Install vsarvo; export/ and training/ are mapped in as vsarvo.export and vsarvo.training.

All dependency pins live here (lower bounds only)."""
from setuptools import setup

CORE = [
    "vapoursynth>=72",
    "torch>=2.11",
    "numpy>=1.26",
    "onnx>=1.16",
    "onnxruntime>=1.18",
    "safetensors>=0.4",
]
EXTRAS = {
    "trt": ["tensorrt>=10.12", "torch-tensorrt>=2.8"],
    "train": ["matplotlib>=3.8", "pillow>=10", "scikit-image>=0.22"],
    "ray": ["ray>=2.30"],
}
EXTRAS["dev"] = sorted(set(EXTRAS["train"] + EXTRAS["ray"] + ["pytest>=8", "build>=1.0", "vapoursynth-bestsource>=11"]))

setup(
    name="vsarvo",
    version="0.1.0",
    description="ARVo video deblurring (CVPR 2021) as a VapourSynth plugin",
    python_requires=">=3.12",
    packages=[
        "vsarvo", "vsarvo.model", "vsarvo.backends", "vsarvo.weights",
        "vsarvo.export", "vsarvo.training",
    ],
    package_dir={"vsarvo.export": "export", "vsarvo.training": "training"},
    package_data={"vsarvo.weights": ["*.safetensors", "*.json", "*.md"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["arvo=vsarvo.cli:main"]},
)
