"""tdBN statistics and the EMS-Block2 pool-after-concat order."""

import torch

from emsdeploy.models import EMSBlock2, SeqConv2d, TdBatchNorm


def test_tdbn_statistics_over_time_batch_and_space():
    bn = TdBatchNorm(3, gamma_init=1.0, momentum=1.0)
    x = torch.randn(4, 2, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1, 1) + 7
    y = bn.train()(x)
    per_channel = x.permute(2, 0, 1, 3, 4).reshape(3, -1)  # (C, T·B·H·W)
    torch.testing.assert_close(bn.running_mean, per_channel.mean(1))
    torch.testing.assert_close(bn.running_var, per_channel.var(1, unbiased=True))
    normed = y.permute(2, 0, 1, 3, 4).reshape(3, -1)
    torch.testing.assert_close(normed.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.var(1, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)


def test_tdbn_eval_is_the_affine_map():
    bn = TdBatchNorm(2)
    bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
    bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    bn.weight.data = torch.tensor([0.5, 2.0])
    bn.bias.data = torch.tensor([0.1, -0.3])
    x = torch.randn(3, 2, 2, 4, 4)
    expect = (x - bn.running_mean.view(1, 1, 2, 1, 1)) / torch.sqrt(bn.running_var.view(1, 1, 2, 1, 1) + 1e-5)
    expect = expect * bn.weight.view(1, 1, 2, 1, 1) + bn.bias.view(1, 1, 2, 1, 1)
    torch.testing.assert_close(bn.eval()(x), expect)


def test_tdbn_gamma_init():
    assert TdBatchNorm(4).weight.tolist() == [0.5] * 4
    assert TdBatchNorm(4, 0.1).weight.allclose(torch.full((4,), 0.1))


def test_seq_conv_equals_per_step_conv():
    conv = SeqConv2d(3, 4, 3, 2, 1)
    x = torch.randn(5, 2, 3, 9, 9)
    per_step = torch.stack([torch.nn.functional.conv2d(x[t], conv.weight, conv.bias, 2, 1) for t in range(5)])
    torch.testing.assert_close(conv(x), per_step)


def _pool(x, s=2):
    return torch.nn.functional.max_pool2d(x.flatten(0, 1), s).unflatten(0, x.shape[:2])


def test_ems_block2_pools_after_the_concat():
    """The shortcut's LIF → conv1×1 → BN sees full-resolution x; the max-pool comes last."""
    torch.manual_seed(1)
    block = EMSBlock2(4, 6, k=3, s=2).eval()
    x = torch.randn(3, 1, 4, 8, 8)
    expect = block.residual_function(x) + _pool(torch.cat([block.shortcut(x), x], 2))
    torch.testing.assert_close(block(x), expect)
    assert block(x).shape == (3, 1, 6, 4, 4)
    # The paper's figure draws the pool first; that is a different model, and it shows.
    pool_first = block.residual_function(x) + torch.cat([block.shortcut(_pool(x)), _pool(x)], 2)
    assert not torch.allclose(block(x), pool_first)
    # The concat order is [conv part, x].
    torch.testing.assert_close(
        block(x)[:, :, 2:], (block.residual_function(x) + _pool(torch.cat([block.shortcut(x), x], 2)))[:, :, 2:]
    )
    assert torch.equal(_pool(x), (block(x) - block.residual_function(x))[:, :, 2:])
