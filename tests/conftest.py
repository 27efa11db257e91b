"""Fixtures shared by several test files."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """torch on one thread: for tiny tensors thread start-up costs more than the work on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
