"""vsarvo: ARVo video deblurring (CVPR 2021) as a VapourSynth filter.

The filter is reachable two ways, which are the same filter:

- ``core.arvo.Deblur(clip, ...)``: the native namespace, given by the small C
  plugin vsarvo installs into ``vapoursynth/plugins/``; scripts need no
  ``import vsarvo``. On a core's first ``Deblur`` call the plugin imports this
  package and calls :func:`register_with_core`.
- ``vsarvo.Deblur(clip, ...)``: the Python function itself, which also takes a
  backend object with its own options: ``vsarvo.Deblur(clip,
  backend=vsarvo.Backend.TRT(workspace=2048))``.

Importing vsarvo is cheap: it imports neither VapourSynth nor torch; the
filter module loads on first use, and ``vsarvo.Backend`` needs neither.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import vapoursynth as vs

__all__ = ["Backend", "Deblur", "register_with_core"]

# The plugin passes these as VapourSynth ints (0/1); the filter takes bools.
_FLAGS = ("scene_change", "compile", "channels_last")


def register_with_core(core: vs.Core | None = None) -> None:
    """Make vsarvo's filter the implementation of ``core.arvo.Deblur`` on one core.

    Args:
        core: the core to register on; None means the current environment's
            core (``vs.core``), which is the core a script is running on.

    Raises:
        vs.Error: the arvo plugin is not loaded on that core.
    """
    import vapoursynth as vs

    target = vs.core if core is None else core
    try:
        namespace = target.arvo
    except AttributeError:
        raise vs.Error(
            "vsarvo: the arvo plugin is not loaded on this core; reinstall vsarvo "
            "(pip install --force-reinstall vsarvo) so its plugin lands in "
            f"{vs.get_plugin_dir()}"
        ) from None
    namespace.RegisterImplementation(func=_deblur_for_plugin)


def _deblur_for_plugin(clip: vs.VideoNode, **options: Any) -> vs.VideoNode:
    """Run ``vsarvo.filter.Deblur`` with the arguments ``core.arvo.Deblur`` was given.

    The plugin passes only the arguments the user set, as keywords.
    """
    from vsarvo.filter import Deblur

    for flag in _FLAGS:
        if flag in options:
            options[flag] = bool(options[flag])
    return Deblur(clip, **options)


def __getattr__(name: str) -> Any:
    # `vsarvo.Deblur` loads the filter (and torch) only when first asked for.
    if name == "Deblur":
        from vsarvo.filter import Deblur

        return Deblur
    if name == "Backend":
        from vsarvo.backends.options import Backend

        return Backend
    raise AttributeError(f"module 'vsarvo' has no attribute {name!r}")
