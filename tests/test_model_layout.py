"""The networks' parameter layouts against the manifests of the published checkpoints, and the
forward contract: logits (N, C, H, W) at the input size in eval and train mode."""

import pytest
import torch
import torch.nn.functional as F

from src.model import NETWORKS, build_network
from tests.model_testing import read_manifest, two_threads  # noqa: F401 (autouse)

PAPER_NETWORKS = ["DeepLabV3+_WideResNet38", "DualGCNNet_res50"]
SMALL = "DeepLabV3+_MobileNetV3"


@pytest.fixture(scope="module", params=PAPER_NETWORKS)
def paper(request, layouts_dir):
    """(manifest, network with random weights) of one paper network."""
    manifest = read_manifest(layouts_dir, request.param)
    return manifest, build_network(request.param, manifest["num_classes"])


def meta_network(name):
    """The network on the meta device: shapes flow through the real forward code, nothing is computed."""
    with torch.device("meta"):
        return build_network(name, 19)


def test_registry_names_the_three_networks():
    assert list(NETWORKS) == PAPER_NETWORKS + [SMALL]


def test_state_dict_matches_manifest(paper):
    manifest, model = paper
    prefix = manifest["key_prefix"]
    got = [(prefix + k, list(v.shape), str(v.dtype).removeprefix("torch."))
           for k, v in model.state_dict().items()]
    expected = [(k, shape, dtype) for k, shape, dtype, _ in manifest["state_dict"]]
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == manifest["total_parameter_count"]
    assert sum(b.numel() for b in model.buffers()) == manifest["total_buffer_elements"]


def test_convs_match_manifest(paper):
    manifest, model = paper
    convs = {name: m for name, m in model.named_modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d))}
    assert list(convs) == [c[0] for c in manifest["convs"]]
    for name, kind, in_ch, out_ch, kernel, stride, padding, dilation, groups, bias in manifest["convs"]:
        conv = convs[name]
        assert (type(conv).__name__, conv.in_channels, conv.out_channels, list(conv.kernel_size),
                list(conv.stride), list(conv.padding), list(conv.dilation), conv.groups,
                conv.bias is not None) == (kind, in_ch, out_ch, kernel, stride, padding, dilation,
                                           groups, bias), name


def test_pooling_and_dropout_match_manifest(paper):
    manifest, model = paper
    modules = dict(model.named_modules())
    for layer in manifest["other_layers"]:
        if layer["type"] == "MaxPool2d":
            pool = modules[layer["name"]]
            assert (pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode) == (
                layer["kernel_size"], layer["stride"], layer["padding"], layer["ceil_mode"])
        elif layer["type"] == "Dropout2d":
            assert isinstance(modules[layer["name"]], torch.nn.Dropout2d)
            assert modules[layer["name"]].p == layer["p"]


@pytest.mark.parametrize("name", PAPER_NETWORKS)
def test_eval_output_and_intermediate_shapes_256x512(name, layouts_dir):
    manifest = read_manifest(layouts_dir, name)
    model = meta_network(name).eval()
    expected = manifest["top_level_child_output_shapes_eval_input_1x3x256x512"]
    shapes = {}

    def record(child):
        def hook(module, args, out):
            shapes[child] = list(out.shape)
        return hook

    for child in expected:
        getattr(model, child).register_forward_hook(record(child))
    out = model(torch.empty(1, 3, 256, 512, device="meta"))
    assert list(out.shape) == manifest["output"]["shape_for_input_1x3x256x512"] == [1, 19, 256, 512]
    if "dsn" in expected:  # the auxiliary head on layer3 is stored but not evaluated
        shapes["dsn"] = list(model.dsn(torch.empty(expected["layer3"], device="meta")).shape)
    assert shapes == expected


def test_paper_networks_return_logits_in_train_mode(paper):
    manifest, model = paper
    model.train()
    out = model(torch.randn(2, 3, 72, 136))
    assert out.shape == (2, manifest["num_classes"], 72, 136)
    assert torch.isfinite(out).all()
    out.square().mean().backward()  # fails if an in-place op overwrote a tensor autograd needs
    # DistributedDataParallel needs a gradient for every parameter that requires one.
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def test_small_network_is_small():
    model = build_network(SMALL, 19)
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


@pytest.mark.parametrize("num_classes", [19, 2])
def test_small_network_output_shapes(num_classes):
    torch.manual_seed(0)
    model = build_network(SMALL, num_classes).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 512)).shape == (1, num_classes, 256, 512)
        assert model(torch.randn(2, 3, 72, 136)).shape == (2, num_classes, 72, 136)
    model.train()
    assert model(torch.randn(2, 3, 128, 256)).shape == (2, num_classes, 128, 256)


def test_small_network_learns_a_fixed_batch():
    torch.manual_seed(0)
    model = build_network(SMALL, 19).train()
    images = torch.randn(4, 3, 64, 96)
    labels = torch.randint(0, 19, (4, 64, 96))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses
    assert all(p.grad is not None for p in model.parameters())
