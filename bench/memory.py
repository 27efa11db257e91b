"""Process memory readings from /proc/self/status (Linux): resident set size and its high-water mark.

A point's peak memory is measured in a fresh process: read VmRSS before the work, reset the
high-water mark where the kernel allows it (writing 5 to /proc/self/clear_refs), do the work, read
VmHWM. The difference is what the work added at its peak, whatever allocator or library held it.
"""
from __future__ import annotations

__all__ = ["rss_bytes", "peak_rss_bytes", "reset_peak_rss"]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line; peak memory needs Linux")


def rss_bytes() -> int:
    """Resident set size now (VmRSS)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Highest resident set size since the process started or since the last reset (VmHWM)."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Set the high-water mark to the current RSS; False where the kernel does not allow it.

    When this fails, ``peak_rss_bytes`` still counts everything since the process started, so a
    caller should subtract the peak read before the work rather than the RSS.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True
