"""GlobalBatchNorm (pix2pix --norm batch under torchrun): BatchNorm's numbers, no host read per layer.

Without a process group the gather returns this rank's statistics, so the global-batch code path runs
in one process and must equal nn.BatchNorm2d; the 2-process equality is tests/test_pix2pix_ddp.py.
"""

import pytest
import torch
from host_reads import HostReads
from numerics import summation

from stylekit.train.distributed import DistInfo
from stylekit.train.sync_norm import GlobalBatchNorm, global_batchnorm


@pytest.mark.numerics
def test_global_batchnorm_equals_batchnorm_and_reads_nothing():
    g = torch.Generator().manual_seed(0)
    ref = torch.nn.BatchNorm2d(5)
    with torch.no_grad():
        ref.weight.copy_(torch.rand(5, generator=g) + 0.5)
        ref.bias.copy_(torch.randn(5, generator=g))
    net = global_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(5)).eval().train(), DistInfo(world_size=2))
    net[0].load_state_dict(ref.state_dict())
    assert isinstance(net[0], GlobalBatchNorm)
    x = torch.randn(4, 5, 6, 6, generator=g) * 3 + 1
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    with HostReads() as reads:
        ya = net(xa)
        (ya * torch.arange(ya.numel(), dtype=ya.dtype).reshape(ya.shape)).sum().backward()
    assert reads.total == 0, reads.sites
    yb = ref(xb)
    (yb * torch.arange(yb.numel(), dtype=yb.dtype).reshape(yb.shape)).sum().backward()
    tol = summation(4 * 6 * 6)  # one reduction over the N*H*W values of a channel, summed another way
    torch.testing.assert_close(ya, yb, rtol=tol, atol=tol * float(yb.detach().abs().max()))
    torch.testing.assert_close(xa.grad, xb.grad, rtol=tol, atol=tol * float(xb.grad.abs().max()))
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(net[0], name), getattr(ref, name), rtol=tol, atol=tol)
    net.eval()
    y = ref.eval()(x).detach()  # eval: normalised by the running statistics, as BatchNorm
    torch.testing.assert_close(net(x), y, rtol=tol, atol=tol * float(y.abs().max()))
