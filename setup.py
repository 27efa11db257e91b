"""Install vsarvo; export/ and training/ are mapped in as vsarvo.export and vsarvo.training.

Also builds the native VapourSynth plugin that gives scripts `core.arvo.*`
(vsarvo/plugin/arvo_shim.c) and installs it into site-packages/vapoursynth/plugins/,
where VapourSynth autoloads plugins.

All dependency pins live here (lower bounds only)."""
import importlib.util
import sys
from pathlib import Path

from setuptools import Command, Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build import build

# After setuptools: on Python 3.12 `distutils` is the copy setuptools provides.
from distutils.ccompiler import new_compiler  # noqa: E402
from distutils.sysconfig import customize_compiler  # noqa: E402

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
    # vs-mlrt's onnxruntime plugin (core.ort.Model), for running the exported stacked-frame graph.
    "mlrt": ["vapoursynth-mlrt-ort>=17"],
    # bench/: the BasicVSR++ peer as vsbasicvsrpp ships it (its network imports mmengine and
    # torchvision) and the aggregation-memory plot.
    "bench": ["vsbasicvsrpp==3.0.0", "mmengine>=0.10", "torchvision>=0.20.1", "matplotlib>=3.8"],
}
EXTRAS["dev"] = sorted(set(
    EXTRAS["train"] + EXTRAS["ray"] + EXTRAS["mlrt"] + ["pytest>=8", "build>=1.0", "vapoursynth-bestsource>=11"]
))

PLUGIN_SOURCE = "vsarvo/plugin/arvo_shim.c"
# Where the plugin goes, relative to site-packages: VapourSynth (R72+ wheels)
# loads every library in the plugins folder next to its own library.
PLUGIN_DIR = Path("vapoursynth", "plugins")


def vapoursynth_include_dir() -> str:
    """The VapourSynth API4 headers shipped inside the vapoursynth wheel.

    Found without importing vapoursynth, so building needs only its files.
    """
    spec = importlib.util.find_spec("vapoursynth")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("building vsarvo's plugin needs the vapoursynth package (>=72) for its headers")
    include = Path(next(iter(spec.submodule_search_locations)), "include")
    if not (include / "VapourSynth4.h").is_file():
        raise RuntimeError(f"VapourSynth4.h not found in {include}; install vapoursynth>=72")
    return str(include)


class build_vs_plugin(Command):
    """Compile the core.arvo plugin into vapoursynth/plugins/ of the build tree.

    The plugin is a plain shared library, not a Python extension: it must not
    link libpython (it finds the running interpreter's C API at run time, and
    vspipe loads the interpreter itself). In an editable install the library
    goes straight into the editable wheel, so pip still installs it into
    site-packages/vapoursynth/plugins/.
    """

    description = "build the native VapourSynth plugin that gives core.arvo.*"
    user_options = []

    def initialize_options(self) -> None:
        self.build_lib = None
        self.build_temp = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build", ("build_lib", "build_lib"), ("build_temp", "build_temp"))

    def output_path(self) -> Path:
        """Where the built library goes; its file name is the platform's shared-library name."""
        compiler = new_compiler()
        name = compiler.library_filename("vsarvo", lib_type="dylib" if sys.platform == "darwin" else "shared")
        # An editable install packs the editable wheel from install_lib; files
        # in build_lib are not installed there.
        root = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        return Path(root, PLUGIN_DIR, name)

    def run(self) -> None:
        compiler = new_compiler()
        customize_compiler(compiler)
        if hasattr(compiler, "linker_so"):
            # Python's LDSHARED carries its own library path and rpath; the
            # plugin links nothing of Python's.
            compiler.set_executable(
                "linker_so", [arg for arg in compiler.linker_so if not arg.startswith(("-L", "-Wl,-rpath"))]
            )
        compiler.add_include_dir(vapoursynth_include_dir())
        preargs = [] if sys.platform == "win32" else ["-fvisibility=hidden"]
        objects = compiler.compile([PLUGIN_SOURCE], output_dir=self.build_temp, extra_preargs=preargs)
        libraries = ["dl", "pthread"] if sys.platform.startswith("linux") else []
        output = self.output_path()
        output.parent.mkdir(parents=True, exist_ok=True)
        compiler.link_shared_object(objects, str(output), libraries=libraries)

    def get_outputs(self) -> list[str]:
        return [str(self.output_path())]


class build_with_plugin(build):
    """`build` that also builds the native plugin."""

    sub_commands = build.sub_commands + [("build_vs_plugin", None)]


class DistributionWithPlugin(Distribution):
    """A distribution that carries a native library, so it installs into platlib and its wheel is not pure."""

    def has_ext_modules(self) -> bool:
        return True


class bdist_wheel_with_plugin(bdist_wheel):
    """A wheel tagged for its platform (it carries a native library) but any Python 3 (the library does not link libpython)."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    name="vsarvo",
    version="0.1.0",
    description="ARVo video deblurring (CVPR 2021) as a VapourSynth plugin",
    python_requires=">=3.12",
    packages=[
        "vsarvo", "vsarvo.model", "vsarvo.backends", "vsarvo.weights", "vsarvo.remaster",
        "vsarvo.export", "vsarvo.training", "vsarvo.training.data",
    ],
    package_dir={"vsarvo.export": "export", "vsarvo.training": "training"},
    package_data={"vsarvo.weights": ["*.safetensors", "*.json", "*.md"]},
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["arvo=vsarvo.cli:main"]},
    distclass=DistributionWithPlugin,
    cmdclass={"build": build_with_plugin, "build_vs_plugin": build_vs_plugin, "bdist_wheel": bdist_wheel_with_plugin},
)
