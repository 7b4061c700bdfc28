"""Tests for pneumolib.explain: Grad-CAM shapes, hooks, a cross-check against pytorch-grad-cam,
localisation on models whose answer is known, the randomisation sanity check, outcome picking."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pneumolib.explain import (
    cam_overlay,
    feature_map_size,
    get_layer,
    grad_cam,
    layer_names,
    module_name,
    outcome_indices,
    randomization_blocks,
    randomize_layers,
    sanity_check,
)
from pneumolib.models import build_model


def _minmax(a):
    a = np.asarray(a, dtype=np.float64)
    out = np.zeros_like(a)
    for i, m in enumerate(a):
        rng = m.max() - m.min()
        out[i] = (m - m.min()) / rng if rng > 0 else 0.0
    return out


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def densenet():
    torch.manual_seed(0)
    return build_model("densenet121", 1, image_size=28)


@pytest.fixture(scope="module")
def square_data():
    """28 px noise images; positives carry a bright 6x6 square anywhere (its corner is returned)."""
    g = torch.Generator().manual_seed(0)

    def make(n, pos_frac=0.5, corners=None):
        x = torch.rand(n, 1, 28, 28, generator=g) * 0.3
        y = (torch.rand(n, generator=g) < pos_frac).long()
        rc = torch.randint(0, 23, (n, 2), generator=g) if corners is None else torch.as_tensor(corners)
        for i in range(n):
            if y[i]:
                r, c = rc[i].tolist()
                x[i, 0, r : r + 6, c : c + 6] = 1.0
        return x, y, rc

    return make


@pytest.fixture(scope="module")
def trained_cnn(square_data):
    """simple_cnn trained for a few steps to answer "is there a bright square?" (binary logit)."""
    torch.manual_seed(0)
    model = build_model("simple_cnn", 1, image_size=28)
    x, y, _ = square_data(512)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(40):
        idx = torch.randint(0, len(x), (32,))
        loss = F.binary_cross_entropy_with_logits(model(x[idx])[:, 0], y[idx].float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt, _ = square_data(128)
    with torch.no_grad():
        acc = ((model(xt)[:, 0] > 0).long() == yt).float().mean().item()
    assert acc > 0.95, f"fixture model failed to learn the square task (acc {acc:.2f})"
    return model


# --------------------------------------------------------------------------- shapes, hooks


@pytest.mark.parametrize("name", ["simple_cnn", "resnet18", "densenet121"])
def test_cam_shape_range_and_no_leftover_hooks(name, densenet):
    torch.manual_seed(1)
    model = densenet if name == "densenet121" else build_model(name, 1, image_size=28)
    model.train()  # grad_cam must switch to eval and back
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.rand(2, 1, 28, 28)
    cam = grad_cam(model, x)
    assert cam.shape == (2, 28, 28) and cam.dtype == np.float32
    assert np.isfinite(cam).all() and cam.min() >= 0 and cam.max() <= 1
    for m in cam:  # each map is normalised to peak 1 unless it is all zero
        assert m.max() == pytest.approx(1.0) or m.max() == 0
    assert len(model.target_layer._forward_hooks) == 0 and _no_hooks(model)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    cam2 = grad_cam(model, x)  # a second call works and, in eval mode, gives the same maps
    np.testing.assert_allclose(cam2, cam, atol=1e-5)
    assert len(model.target_layer._forward_hooks) == 0
    model.eval()


def test_densenet_inplace_relu_matches_manual_gradcam(densenet):
    """Grad-CAM on net.features (followed by F.relu(inplace=True)) equals a hand computation."""
    torch.manual_seed(2)
    x = torch.rand(1, 1, 28, 28)
    cam = grad_cam(densenet, x, target_class=0)  # binary class 0 -> score = -logit
    net = densenet.backbone
    with torch.enable_grad():
        a = net.features(densenet.adapter(x)).detach().requires_grad_(True)
        logit = net.classifier(torch.flatten(F.adaptive_avg_pool2d(F.relu(a), 1), 1))[:, 0]
        (g,) = torch.autograd.grad((-logit).sum(), a)
    ref = F.relu((g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(28, 28), mode="bilinear", align_corners=False)[:, 0].numpy()
    ref = ref / np.maximum(ref.reshape(len(ref), -1).max(1), 1e-12)[:, None, None]
    assert ref.max() > 0
    np.testing.assert_allclose(cam, ref, atol=1e-4)
    assert _no_hooks(densenet)


def test_feature_map_sizes(densenet):
    assert feature_map_size(build_model("simple_cnn", 1, image_size=28), 28) == (7, 7)
    assert feature_map_size(build_model("resnet18", 1, image_size=28), 28) == (4, 4)
    assert feature_map_size(densenet, 28) == (2, 2)  # input upsampled to 64 px by the adapter
    assert feature_map_size(build_model("simple_cnn", 3, image_size=64), 64) == (16, 16)
    assert feature_map_size(build_model("resnet18", 3, image_size=64), 64) == (
        4,
        4,
    )  # 3x3 stride-1 stem, max-pool kept above 32 px
    assert _no_hooks(densenet)


# --------------------------------------------------------------------------- cross-check


def test_matches_pytorch_grad_cam_multiclass():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(3)
    model = build_model("resnet18", 3, image_size=28).eval()
    x = torch.rand(3, 1, 28, 28)
    classes = [2, 0, 1]
    ours, used = grad_cam(model, x, target_class=classes, return_targets=True)
    assert used.tolist() == classes
    with GradCAM(model=model, target_layers=[model.target_layer]) as ref_cam:
        ref = ref_cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    # pytorch-grad-cam min-max normalises at feature-map resolution, resizes with cv2 (half-pixel
    # bilinear, like align_corners=False), then min-max normalises again; we divide by the max after
    # resizing. Both are affine in the same bilinear map, so min-max both before comparing.
    np.testing.assert_allclose(_minmax(ours), ref, atol=2e-3)
    assert np.corrcoef(_minmax(ours).ravel(), ref.ravel())[0, 1] > 0.99
    # default target = each image's predicted class
    with torch.no_grad():
        pred = model(x).argmax(1).tolist()
    default = grad_cam(model, x[:1], return_targets=True)[1]
    assert default.tolist() == pred[:1]
    assert _no_hooks(model)


def test_matches_pytorch_grad_cam_binary_both_classes(trained_cnn, square_data):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x, _, _ = square_data(4, pos_frac=1.0)
    model = copy.deepcopy(trained_cnn)
    # Compare on the last ReLU of the features. (pytorch-grad-cam cannot be compared on a layer
    # whose output is then modified in place: it keeps a storage-sharing view of the output.)
    relu = [m for m in model.backbone.features if isinstance(m, nn.ReLU)][-1]
    cams = {}
    for cls, target in ((1, ClassifierOutputTarget(0)), (0, lambda out: -out[0])):
        cams[cls] = grad_cam(model, x, target_class=cls, layer=relu)
        with GradCAM(model=model, target_layers=[relu]) as ref_cam:
            ref = ref_cam(input_tensor=x, targets=[target] * len(x))
        assert ref.max() > 0
        np.testing.assert_allclose(_minmax(cams[cls]), ref, atol=2e-3)
    assert not np.allclose(cams[1], cams[0])  # class 1 and class 0 explain different things
    assert _no_hooks(model)


def test_layer_followed_by_inplace_relu_matches_manual_gradcam(trained_cnn, square_data):
    """A BatchNorm layer whose output the next (in-place) ReLU overwrites: activations must be pre-ReLU."""
    x, _, _ = square_data(3, pos_frac=1.0)
    f = trained_cnn.backbone.features
    bn_idx = max(i for i, m in enumerate(f) if isinstance(m, nn.BatchNorm2d))
    assert isinstance(f[bn_idx + 1], nn.ReLU) and f[bn_idx + 1].inplace
    cam = grad_cam(trained_cnn, x, layer=f[bn_idx])
    with torch.enable_grad():
        a = f[: bn_idx + 1](trained_cnn.adapter(x)).detach().requires_grad_(True)
        net = trained_cnn.backbone
        logit = net.fc(torch.flatten(net.pool(f[bn_idx + 1 :](a.clone())), 1))[:, 0]
        (g,) = torch.autograd.grad(logit.sum(), a)
    assert (a < 0).any()  # pre-ReLU activations: negative values must survive
    ref = F.relu((g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(28, 28), mode="bilinear", align_corners=False)[:, 0].numpy()
    ref = ref / np.maximum(ref.reshape(len(ref), -1).max(1), 1e-12)[:, None, None]
    np.testing.assert_allclose(cam, ref, atol=1e-4)


# --------------------------------------------------------------------------- localisation


class _TwoDetectors(nn.Module):
    """Channel 0 fires on bright patches, channel 1 on dark ones; the logit reads channel 0 only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 5, padding=2)
        with torch.no_grad():
            self.conv.weight[0].fill_(1 / 25)
            self.conv.bias[0] = -0.6  # mean > 0.6: bright
            self.conv.weight[1].fill_(-1 / 25)
            self.conv.bias[1] = 0.4  # mean < 0.4: dark
        self.relu = nn.ReLU()
        self.fc = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0]]))
            self.fc.bias.zero_()
        self.target_layer = self.relu

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.relu(self.conv(x)), 1).flatten(1))


def test_localisation_hand_built_model_non_square_image():
    model = _TwoDetectors()
    x = torch.full((1, 1, 20, 32), 0.5)
    x[0, 0, 2:8, 3:11] = 1.0  # bright patch: top-left (rows < 10, cols < 16)
    x[0, 0, 12:18, 20:28] = 0.0  # dark patch: bottom-right (only channel 1 sees it)
    cam = grad_cam(model, x)[0]
    assert cam.shape == (20, 32)
    r, c = np.unravel_index(cam.argmax(), cam.shape)
    assert r < 10 and c < 16
    assert cam[:10, :16].sum() / cam.sum() > 0.95
    assert cam[12:18, 20:28].max() == 0
    # class 0 (score -logit): no positive evidence anywhere -> an all-zero map, not NaN
    cam0 = grad_cam(model, x, target_class=0)
    assert np.isfinite(cam0).all() and cam0.max() == 0


def test_localisation_trained_square_detector(trained_cnn, square_data):
    corners = [(2, 2), (2, 20), (20, 2), (20, 20), (4, 17), (18, 6), (11, 11), (15, 3)]
    x, _, _ = square_data(len(corners), pos_frac=1.0, corners=corners)
    cams = grad_cam(trained_cnn, x)
    hits = 0
    for cam, (r0, c0) in zip(cams, corners):
        r, c = np.unravel_index(cam.argmax(), cam.shape)
        hits += (r0 - 3 <= r <= r0 + 8) and (c0 - 3 <= c <= c0 + 8)  # on the square, +-3 px (4 px cells)
    assert hits >= 7, f"CAM peak on the square in only {hits}/8 images"


# --------------------------------------------------------------------------- randomisation


def test_randomization_blocks_per_architecture(densenet):
    names = lambda m: [n for n, _ in randomization_blocks(m)]  # noqa: E731
    assert names(build_model("simple_cnn")) == ["fc", "block3", "block2", "block1"]
    assert names(build_model("resnet18")) == ["fc", "layer4", "layer3", "layer2", "layer1", "stem"]
    assert names(densenet) == [
        "classifier",
        "denseblock4+norm5",
        "transition3",
        "denseblock3",
        "transition2",
        "denseblock2",
        "transition1",
        "denseblock1",
        "stem",
    ]
    assert names(_TwoDetectors()) == ["fc", "conv"]  # generic fallback: parameterised leaves, last first


def test_randomize_layers_cascade_and_original_untouched(trained_cnn):
    before = {k: v.clone() for k, v in trained_cnn.state_dict().items()}
    rng_state = torch.get_rng_state()
    r1, r2 = randomize_layers(trained_cnn, 1, seed=0), randomize_layers(trained_cnn, 2, seed=0)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global RNG untouched
    after = trained_cnn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    net, n1, n2 = trained_cnn.backbone, r1.backbone, r2.backbone
    assert not torch.equal(n1.fc.weight, net.fc.weight)
    assert torch.equal(n1.features[8].weight, net.features[8].weight)  # block3 kept at n_top=1
    assert not torch.equal(n2.features[8].weight, net.features[8].weight)  # ... randomised at n_top=2
    assert torch.equal(n2.fc.weight, n1.fc.weight)  # cascade: same random head
    assert torch.equal(n2.features[0].weight, net.features[0].weight)  # block1 untouched
    idx = [i for i, m in enumerate(net.features) if m is trained_cnn.target_layer][0]
    assert r2.target_layer is r2.backbone.features[idx]  # aliases follow the copy
    torch.manual_seed(123)  # the result depends on `seed` only, not on the global RNG state
    again = randomize_layers(trained_cnn, 2, seed=0)
    assert torch.equal(again.backbone.features[8].weight, n2.features[8].weight)
    assert not torch.equal(randomize_layers(trained_cnn, 1, seed=1).backbone.fc.weight, n1.fc.weight)
    with pytest.raises(ValueError):
        randomize_layers(trained_cnn, 5)


def test_sanity_check_maps_decorrelate(trained_cnn, square_data):
    x, _, _ = square_data(16, pos_frac=1.0)
    df = sanity_check(trained_cnn, x, n_tops=(0, 1, 2, 3, 4))
    assert list(df.columns) == ["n_top", "block", "spearman", "spearman_std", "spearman_abs", "n_undefined", "abs_diff"]
    assert df["n_top"].tolist() == [0, 1, 2, 3, 4]
    assert df["block"].tolist() == ["(none)", "fc", "block3", "block2", "block1"]
    control, rnd = df.iloc[0], df.iloc[1:]
    # n_top = 0 is the control: the model compared with an unmodified copy of itself
    assert control["spearman"] == pytest.approx(1.0) and control["abs_diff"] == pytest.approx(0.0, abs=1e-6)
    # every randomised step moves the maps well away from the trained ones (measured here:
    # rho = -0.76, 0.61, -0.10, 0.55; what remains at the last step is input-driven: any conv net
    # responds to a bright square). A method that ignored the weights would keep rho = 1.
    assert (rnd["spearman"] < 0.8).all() and rnd["spearman"].mean() < 0.3
    assert (rnd["abs_diff"] > 0.05).all()
    assert (rnd["n_undefined"] < len(x)).all()
    assert _no_hooks(trained_cnn)


def test_default_layer_comes_from_get_layer():
    model = build_model("resnet18", 1, image_size=28)
    assert get_layer(model) == ("backbone.layer4", model.target_layer)
    assert module_name(model, model.target_layer) == "backbone.layer4"
    assert layer_names(model) == ["backbone.layer4", "backbone.layer3"]
    plain = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(1))
    with pytest.raises(ValueError, match="no `target_layer`"):
        grad_cam(plain, torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="no `target_layer`"):
        feature_map_size(plain, 8)


# --------------------------------------------------------------------------- overlay, outcomes


def test_cam_overlay():
    img = np.linspace(0, 1, 12).reshape(3, 4)
    cam = np.zeros((3, 4))
    cam[0, 0] = 1.0
    out = cam_overlay(img, cam)
    assert out.shape == (3, 4, 3) and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(cam_overlay(img, cam, alpha=0.0), np.repeat(img[..., None], 3, -1))
    import matplotlib

    np.testing.assert_allclose(cam_overlay(img, cam, alpha=1.0), matplotlib.colormaps["jet"](cam)[..., :3])
    with pytest.raises(ValueError):
        cam_overlay(img, cam[:2])


def test_outcome_indices_partition_and_order():
    y_true = np.array([1, 0, 1, 0, 1, 0, 1, 0, 1])
    y_prob = np.array([0.9, 0.2, 0.4, 0.7, 0.99, 0.5, 0.05, 0.01, 0.5])
    out = outcome_indices(y_true, y_prob)
    assert out["TP"].tolist() == [4, 0, 8]  # 0.5 counts as positive (y_prob >= threshold)
    assert out["TN"].tolist() == [7, 1]
    assert out["FP"].tolist() == [3, 5]
    assert out["FN"].tolist() == [6, 2]
    allidx = np.concatenate(list(out.values()))
    assert sorted(allidx.tolist()) == list(range(len(y_true)))
    out2 = outcome_indices(y_true, y_prob, threshold=0.95)
    assert out2["TP"].tolist() == [4] and out2["FP"].tolist() == []
    assert out2["FN"].tolist() == [6, 2, 8, 0]
