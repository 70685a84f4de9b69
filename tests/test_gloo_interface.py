"""Multi-node jobs: gloo must listen on an interface the other nodes reach (stylekit/train/distributed.py)."""

import socket

import pytest

from stylekit.errors import BadInput
from stylekit.train.distributed import gloo_interface


@pytest.fixture
def env(monkeypatch):
    for name in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        monkeypatch.setenv(name, "")  # records the outer value, restored after the test (also what gloo_interface sets)
        monkeypatch.delenv(name)
    return monkeypatch


def test_one_node_needs_nothing(env):
    env.setattr(socket, "gethostbyname", lambda host: "127.0.1.1")
    gloo_interface(world=8, local_world=8)


def test_nccl_interface_is_taken_for_gloo(env):
    env.setenv("NCCL_SOCKET_IFNAME", "ib0")
    gloo_interface(world=16, local_world=8)
    import os

    assert os.environ["GLOO_SOCKET_IFNAME"] == "ib0"


def test_loopback_host_address_across_nodes_is_refused(env):
    env.setattr(socket, "gethostbyname", lambda host: "127.0.1.1")
    with pytest.raises(BadInput) as exc:
        gloo_interface(world=16, local_world=8)
    assert exc.value.exit_code == 2 and "GLOO_SOCKET_IFNAME" in exc.value.hint


def test_routable_host_address_is_fine(env):
    env.setattr(socket, "gethostbyname", lambda host: "10.0.0.7")
    gloo_interface(world=16, local_world=8)
