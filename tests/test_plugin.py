"""The native core.arvo shim (vsarvo/plugin/arvo_shim.c) as VapourSynth runs it.

Every test that registers an implementation runs VapourSynth in its own
process (vspipe or python -c): registrations live on a core, and the
pytest process's core is shared with other test modules. The fake
implementations return std.Invert or a BlankClip, so outputs say exactly
which implementation ran.
"""
from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VSPIPE = Path(sys.executable).with_name("vspipe")

# A 16x8 GRAY8 clip of value 10, two frames: inverted, every byte is 245.
BLANK = "core.std.BlankClip(width=16, height=8, format=vs.GRAY8, length=2, color=10)"
INVERTED = bytes([245]) * (16 * 8 * 2)


def run_python(code: str, *, prelude: str = "", pythonpath: Path | None = None) -> str:
    """Run `prelude` then `code` (dedented) with this interpreter in a fresh process.

    Returns its stdout; fails the test on a non-zero exit. -P keeps the working
    directory (the checkout, which holds a vsarvo/) off sys.path, so a stand-in
    vsarvo on `pythonpath` is the one imported.
    """
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-P", "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_vspipe(script: Path, *, pythonpath: Path | None = None, vspipe: Path = VSPIPE,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run `vspipe script -` (raw frames to stdout)."""
    env = dict(os.environ if env is None else env)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(vspipe), str(script), "-"], capture_output=True, env=env, timeout=120)


def fake_vsarvo(root: Path, register_with_core_body: str) -> Path:
    """A stand-in `vsarvo` package under `root` (put first on PYTHONPATH) whose register_with_core() runs the given body."""
    package = root / "vsarvo"
    package.mkdir(parents=True)
    body = textwrap.indent(textwrap.dedent(register_with_core_body), "    ")
    (package / "__init__.py").write_text(
        "import vapoursynth as vs\n\n\ndef register_with_core():\n" + body + "\n"
    )
    return root


# A policy that switches environments by hand, as editors that reload scripts
# do: each environment has its own core.
POLICY = """
import gc, weakref
import vapoursynth as vs

class Policy(vs.EnvironmentPolicy):
    def __init__(self):
        self.current = None
    def on_policy_registered(self, api):
        self.api = api
    def get_current_environment(self):
        return self.current
    def set_environment(self, environment):
        previous, self.current = self.current, environment
        return previous

policy = Policy()
vs.register_policy(policy)
"""


# ---- vspipe ---------------------------------------------------------------


def test_vspipe_runs_deblur_with_an_implementation_the_script_registers(tmp_path: Path) -> None:
    script = tmp_path / "registered.vpy"
    script.write_text(textwrap.dedent(f"""
        import vapoursynth as vs
        core = vs.core
        core.arvo.RegisterImplementation(func=lambda clip, **options: core.std.Invert(clip))
        core.arvo.Deblur({BLANK}).set_output()
    """))
    done = run_vspipe(script)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == INVERTED


def test_vspipe_first_deblur_imports_vsarvo_and_registers_it(tmp_path: Path) -> None:
    fake = fake_vsarvo(tmp_path / "fake", "vs.core.arvo.RegisterImplementation(func=lambda clip, **o: vs.core.std.Invert(clip))")
    script = tmp_path / "auto.vpy"
    script.write_text(f"import vapoursynth as vs\ncore = vs.core\ncore.arvo.Deblur({BLANK}).set_output()\n")
    done = run_vspipe(script, pythonpath=fake)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == INVERTED


def test_vspipe_reports_a_failing_vsarvo_import_as_the_script_error(tmp_path: Path) -> None:
    fake = fake_vsarvo(tmp_path / "fake", "raise RuntimeError('weights missing from the install')")
    script = tmp_path / "broken.vpy"
    script.write_text(f"import vapoursynth as vs\ncore = vs.core\ncore.arvo.Deblur({BLANK}).set_output()\n")
    done = run_vspipe(script, pythonpath=fake)
    assert done.returncode != 0
    assert done.stdout == b""
    assert ("Deblur: importing vsarvo and calling vsarvo.register_with_core() failed: "
            "RuntimeError: weights missing from the install") in done.stderr.decode()


# ---- python -c --------------------------------------------------------------


def test_deblur_passes_only_the_arguments_the_user_set_as_keywords() -> None:
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        seen = {{}}
        def record(**options):
            seen.update(options)
            return core.std.Invert(options["clip"])
        core.arvo.RegisterImplementation(func=record)
        clip = {BLANK}
        out = core.arvo.Deblur(clip, tile=64, backend="torch", scene_change=False, sc_threshold=0.25)
        print(sorted((k, v) for k, v in seen.items() if k != "clip"))
        print(seen["clip"].width, seen["clip"].height, seen["clip"].num_frames)
        print(bytes(out.get_frame(1)[0]) == bytes([245]) * 128)
    """)
    assert out.splitlines() == [
        "[('backend', 'torch'), ('sc_threshold', 0.25), ('scene_change', 0), ('tile', 64)]",
        "16 8 2",
        "True",
    ]


def test_python_exception_comes_back_as_vs_error_with_type_message_and_traceback() -> None:
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        def fail(**options):
            raise ValueError("tile must be positive, got -3")
        core.arvo.RegisterImplementation(func=fail)
        try:
            core.arvo.Deblur({BLANK})
        except vs.Error as error:
            print(repr(str(error)))
    """)
    message = ast.literal_eval(out)  # the repr printed above
    headline, _, traceback = message.partition("\n\n")
    assert headline == "Deblur: ValueError: tile must be positive, got -3"
    assert traceback.startswith("Traceback (most recent call last):")
    assert 'File "<string>", line 5, in fail' in traceback


@pytest.mark.parametrize(("raised", "message"), [
    ("Deblur: variable-format clips are not supported", "Deblur: variable-format clips are not supported"),
    ("arvo.Deblur: weights missing", "arvo.Deblur: weights missing"),
    ("Invert: clip must be integer", "Deblur: Invert: clip must be integer"),
])
def test_vs_error_from_the_implementation_keeps_its_message_named_after_deblur(raised: str, message: str) -> None:
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        def fail(**options):
            raise vs.Error({raised!r})
        core.arvo.RegisterImplementation(func=fail)
        try:
            core.arvo.Deblur({BLANK})
        except vs.Error as error:
            print(repr(str(error)))
    """)
    assert ast.literal_eval(out) == message


def test_implementation_that_returns_no_clip_is_a_deblur_error() -> None:
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        core.arvo.RegisterImplementation(func=lambda **options: None)
        try:
            core.arvo.Deblur({BLANK})
        except vs.Error as error:
            print(str(error))
    """)
    assert out.strip() == ("Deblur: the registered implementation returned no video clip; "
                           "it must return the output VideoNode")


def test_registering_again_replaces_the_implementation() -> None:
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        clip = {BLANK}
        core.arvo.RegisterImplementation(func=lambda clip, **o: core.std.Invert(clip))
        core.arvo.RegisterImplementation(func=lambda clip, **o: core.std.BlankClip(clip, color=77))
        print(core.arvo.Deblur(clip).get_frame(0)[0][0, 0])
    """)
    assert out.strip() == "77"


def test_python_first_deblur_imports_vsarvo_and_registers_it(tmp_path: Path) -> None:
    fake = fake_vsarvo(tmp_path / "fake", """
        import sys
        print("register_with_core called", file=sys.stderr)
        vs.core.arvo.RegisterImplementation(func=lambda clip, **o: vs.core.std.BlankClip(clip, color=33))
    """)
    out = run_python(f"""
        import sys
        import vapoursynth as vs
        core = vs.core
        print("vsarvo" in sys.modules)
        print(core.arvo.Deblur({BLANK}).get_frame(0)[0][0, 0])
        print("vsarvo" in sys.modules)
    """, pythonpath=fake)
    assert out.splitlines() == ["False", "33", "True"]


def test_register_with_core_that_registers_nothing_is_a_deblur_error(tmp_path: Path) -> None:
    fake = fake_vsarvo(tmp_path / "fake", "pass")
    out = run_python(f"""
        import vapoursynth as vs
        core = vs.core
        try:
            core.arvo.Deblur({BLANK})
        except vs.Error as error:
            print(str(error))
    """, pythonpath=fake)
    assert out.strip().startswith("Deblur: vsarvo.register_with_core() registered no implementation on this core")


# ---- several cores in one process ------------------------------------------


def test_two_cores_in_one_process_keep_their_own_implementations() -> None:
    out = run_python(prelude=POLICY, code=f"""
        environments = [policy.api.create_environment() for _ in range(2)]
        for environment, color in zip(environments, (11, 22)):
            policy.set_environment(environment)
            vs.core.arvo.RegisterImplementation(func=lambda clip, color=color, **o: vs.core.std.BlankClip(clip, color=color))
        # Interleaved, so neither registration overwrote the other.
        for environment in environments + environments:
            policy.set_environment(environment)
            core = vs.core
            print(core.arvo.Deblur({BLANK}).get_frame(0)[0][0, 0])
    """)
    assert out.split() == ["11", "22", "11", "22"]


def test_freeing_a_core_releases_its_implementation_only() -> None:
    out = run_python(prelude=POLICY, code=f"""
        class Implementation:
            def __call__(self, clip, **options):
                return vs.core.std.Invert(clip)
        environments = [policy.api.create_environment() for _ in range(2)]
        alive = []
        for environment in environments:
            policy.set_environment(environment)
            implementation = Implementation()
            alive.append(weakref.ref(implementation))
            vs.core.arvo.RegisterImplementation(func=implementation)
            core = vs.core
            core.arvo.Deblur({BLANK}).get_frame(0)
        del implementation, core
        policy.set_environment(None)
        gc.collect()
        print([ref() is not None for ref in alive])
        policy.api.destroy_environment(environments[0])
        gc.collect()
        print([ref() is not None for ref in alive])
    """)
    assert out.splitlines() == ["[True, True]", "[False, True]"]


def test_a_reloaded_script_core_imports_and_registers_again(tmp_path: Path) -> None:
    fake = fake_vsarvo(tmp_path / "fake", """
        global calls
        calls = globals().get("calls", 0) + 1
        vs.core.arvo.RegisterImplementation(func=lambda clip, **o: vs.core.std.BlankClip(clip, color=calls))
    """)
    out = run_python(prelude=POLICY, code=f"""
        # Load, free, load again: what an editor does when a script is reloaded.
        for _ in range(2):
            environment = policy.api.create_environment()
            policy.set_environment(environment)
            core = vs.core
            print(core.arvo.Deblur({BLANK}).get_frame(0)[0][0, 0])
            del core
            policy.set_environment(None)
            policy.api.destroy_environment(environment)
            gc.collect()
    """, pythonpath=fake)
    assert out.split() == ["1", "2"]


# ---- vsarvo's side ----------------------------------------------------------


def test_import_vsarvo_loads_neither_torch_nor_vapoursynth() -> None:
    out = run_python("""
        import sys
        import vsarvo
        print("torch" in sys.modules, "vapoursynth" in sys.modules)
    """)
    assert out.strip() == "False False"


def test_register_with_core_forwards_to_vsarvo_filter_deblur_with_bool_flags() -> None:
    out = run_python(f"""
        import sys, types
        import vapoursynth as vs
        import vsarvo
        seen = {{}}
        def Deblur(clip, **options):
            seen.update(options)
            return vs.core.std.Invert(clip)
        filter_module = types.ModuleType("vsarvo.filter")
        filter_module.Deblur = Deblur
        sys.modules["vsarvo.filter"] = filter_module  # stands in for the real filter
        core = vs.core
        vsarvo.register_with_core(core)
        out = core.arvo.Deblur({BLANK}, compile=True, scene_change=False, streams=2)
        print(sorted((k, repr(v)) for k, v in seen.items()))
        print(out.get_frame(0)[0][0, 0])
    """)
    assert out.splitlines() == ["[('compile', 'True'), ('scene_change', 'False'), ('streams', '2')]", "245"]


def test_register_with_core_on_a_core_without_the_plugin_names_the_plugin_folder() -> None:
    out = run_python(prelude=POLICY, code="""
        import vsarvo
        environment = policy.api.create_environment(flags=vs.CoreCreationFlags.DISABLE_AUTO_LOADING)
        policy.set_environment(environment)
        try:
            vsarvo.register_with_core()
        except vs.Error as error:
            print(str(error))
        print(vs.get_plugin_dir())
    """)
    message, plugin_dir = out.splitlines()
    assert message.startswith("vsarvo: the arvo plugin is not loaded on this core; reinstall vsarvo")
    assert message.endswith(plugin_dir)


def parse_vapoursynth_signature(signature: str) -> list[tuple[str, str, bool]]:
    """'clip:vnode;tile:int:opt;' -> [('clip', 'vnode', False), ('tile', 'int', True)]."""
    parameters = []
    for entry in filter(None, signature.split(";")):
        name, kind, *flags = entry.split(":")
        parameters.append((name, kind, "opt" in flags))
    return parameters


def test_deblur_signature_matches_the_python_filter() -> None:
    if importlib.util.find_spec("vsarvo.filter") is None:
        pytest.skip("vsarvo/filter.py does not exist yet")
    import vapoursynth as vs

    from vsarvo.filter import Deblur

    native = parse_vapoursynth_signature(vs.core.arvo.Deblur.signature)
    python = list(inspect.signature(Deblur).parameters.values())
    assert [name for name, _, _ in native] == [p.name for p in python]
    assert python[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in python[1:])
    # Optional in C exactly where the Python function has a default, and the
    # defaults have the C type (data: str, int: int or bool, float: float).
    accepted = {"vnode": (), "data": (str,), "int": (int,), "float": (float,)}
    for (name, kind, optional), parameter in zip(native, python):
        assert optional == (parameter.default is not inspect.Parameter.empty), name
        if optional and parameter.default is not None:
            assert isinstance(parameter.default, accepted[kind]), (name, kind, parameter.default)


# ---- the installed wheel ----------------------------------------------------


def plugin_file_name() -> str:
    """What setup.py names the plugin on this platform."""
    if sys.platform == "win32":
        return "vsarvo.dll"
    return "libvsarvo.dylib" if sys.platform == "darwin" else "libvsarvo.so"


@pytest.mark.slow
def test_built_wheel_installs_a_plugin_that_vspipe_loads(tmp_path: Path) -> None:
    # Built from a copy of the sources, so stale build/ output in the checkout
    # (or another build running there) cannot end up in this wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs", "out", ".whl"))
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("vsarvo-*.whl")
    assert wheel.name.endswith(("-py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_") + ".whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"vapoursynth/plugins/{plugin_file_name()}" in names
    shipped = {f"vsarvo/weights/{p.name}" for p in (ROOT / "vsarvo" / "weights").glob("*.safetensors")}
    assert shipped <= names

    # A fresh environment: its own copy of the vapoursynth package (VapourSynth
    # loads plugins only from the plugins folder next to its own library), the
    # project environment's other packages through a .pth, and the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import vapoursynth

    package = Path(vapoursynth.__file__).parent
    shutil.copytree(package, site / "vapoursynth", ignore=lambda folder, _: ["plugins"] if Path(folder) == package else [])
    for info in package.parent.glob("vapoursynth-*.dist-info"):
        shutil.copytree(info, site / info.name)
    (site / "project-environment.pth").write_text(sysconfig.get_path("platlib") + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (site / "vapoursynth" / "plugins" / plugin_file_name()).is_file()

    # VapourSynth's configuration (which Python vspipe starts) goes to a private folder.
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"), APPDATA=str(tmp_path / "config"))
    subprocess.run([str(python), "-m", "vapoursynth", "config"], check=True, env=env, capture_output=True, timeout=60)
    script = tmp_path / "wheel.vpy"
    script.write_text(textwrap.dedent(f"""
        import sys
        import vapoursynth as vs
        core = vs.core
        print(core.arvo.plugin_path, file=sys.stderr)
        core.arvo.RegisterImplementation(func=lambda clip, **options: core.std.Invert(clip))
        core.arvo.Deblur({BLANK}).set_output()
    """))
    vspipe = site / "vapoursynth" / ("vspipe.exe" if sys.platform == "win32" else "vspipe")
    done = run_vspipe(script, vspipe=vspipe, env=env)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == INVERTED
    assert done.stderr.decode().splitlines()[0] == str(site / "vapoursynth" / "plugins" / plugin_file_name())
