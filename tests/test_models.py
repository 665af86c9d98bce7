"""Model registry: output shapes, norm option, and errors naming the culprit."""

import pytest
import torch

from lossatlas.models import MODELS, build_model, model_options

SHAPES = {"mlp": (1, 40), "cnn1d": (1, 40), "cnn2d": (3, 32, 32), "resnet20": (3, 32, 32)}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_logits_shape_and_norm(name, norm):
    torch.manual_seed(0)
    model = build_model(name, SHAPES[name], 7, width=4, norm=norm)
    out = model(torch.randn(5, *SHAPES[name]))
    assert out.shape == (5, 7)
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert has_bn == (norm == "batch")


def test_width_and_depth_set_parameter_count():
    # mlp on 40 inputs, 10 classes: 40*w + w (bias) per first layer, w*w + w per next, w*10 + 10 out
    model = build_model("mlp", (1, 40), 10, width=8, depth=2)
    assert sum(p.numel() for p in model.parameters()) == (40 * 8 + 8) + (8 * 8 + 8) + (8 * 10 + 10)


def test_resnet20_has_twenty_weight_layers():
    model = build_model("resnet20", (3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 20


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown model 'vgg'.*cnn1d, cnn2d, mlp, resnet20"):
        build_model("vgg", (1, 40), 10)


def test_unknown_option_lists_valid_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) depth for model 'cnn1d'.*norm, width"):
        build_model("cnn1d", (1, 40), 10, depth=3)


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="unknown norm 'layer'"):
        build_model("mlp", (1, 40), 10, norm="layer")


def test_model_options_report_defaults():
    assert model_options("mlp") == {"width": 100, "depth": 2, "norm": "none"}
