"""Optimizer groups and layer decay, schedules, EMA and the run configuration."""
import dataclasses
import re
from pathlib import Path

import pytest
import torch

import modernconv
from modernconv.cli import build_parser
from modernconv.config import TrainConfig, check_key, load_config, overrides_from
from modernconv.engine.ema import build_ema
from modernconv.errors import ConfigError
from modernconv.optim import (build_optimizer, build_scheduler, layer_ids, one_cycle_factor, param_groups,
                              warmup_cosine_factor, warmup_poly_factor)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto", "convmixer_256_8", "convnext_isotropic_small"])
def test_every_parameter_in_exactly_one_group_with_the_papers_scales(name):
    with torch.device("meta"):
        model = modernconv.create_model(name)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.8)
    names = [n for g in groups for n in g["names"]]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters()) and len(names) == len(set(names))
    ids = layer_ids(model)
    top = max(ids.values())
    for g in groups:
        for n, p in zip(g["names"], g["params"]):
            assert g["weight_decay"] == (0.05 if p.ndim >= 2 else 0.0)  # no decay on biases, norms, gamma, GRN
            assert g["lr_scale"] == pytest.approx(0.8 ** (top - ids[n]))
    scales = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scales[next(n for n in names if n.startswith("head."))] == 1.0
    assert scales[next(n for n in names if n.startswith("stem."))] == pytest.approx(0.8 ** top)


def test_no_decay_group_holds_layer_scale_and_grn():
    model = modernconv.create_model("convnextv2_atto")
    groups = param_groups(model, weight_decay=0.05)
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
    assert "stages.0.blocks.0.mlp.grn.weight" in no_decay and "stem.0.bias" in no_decay
    assert "stages.0.blocks.0.mlp.fc1.weight" not in no_decay
    v1 = param_groups(modernconv.create_model("convnext_atto"), weight_decay=0.05)
    assert "stages.0.blocks.0.gamma" in {n for g in v1 if g["weight_decay"] == 0 for n in g["names"]}


@pytest.mark.isa_sensitive
def test_optimizer_is_fused_on_cpu_and_steps_like_a_float64_adamw():
    """The fused fp32 step against torch's per-parameter AdamW in float64, both fed the same gradients: what is
    left is fp32 rounding, bounded per step by a few ulps of the parameter plus a few ulps of the update (at most
    ~lr in size), so the bound holds on any CPU and a wrong lr scale or decay (>= lr x wd x |p|) breaks it."""
    torch.manual_seed(0)
    model = modernconv.create_model("convnextv2_atto", num_classes=10)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, layer_decay=0.8)
    assert all(g["fused"] for g in opt.param_groups)
    exact = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    reference = torch.optim.AdamW([{**{k: v for k, v in g.items() if k not in ("params", "fused")},
                                    "params": [exact[n] for n in g["names"]]} for g in opt.param_groups],
                                  foreach=False)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    start = model.stem[0].weight.detach().clone()
    steps = 3
    for _ in range(steps):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for n, p in model.named_parameters():
            exact[n].grad = p.grad.double()
        opt.step()
        reference.step()
        opt.zero_grad()
    eps = torch.finfo(torch.float32).eps
    for g in opt.param_groups:
        for n, p in zip(g["names"], g["params"]):
            bound = steps * 8 * eps * (exact[n].abs() + g["lr"] * 4)  # |Adam's step| <= lr (1-b1)/sqrt(1-b2) < 4 lr
            assert ((p.double() - exact[n]).abs() <= bound).all(), n
    assert not torch.equal(model.stem[0].weight, start)


def test_optimizer_lrs_follow_the_scales():
    model = modernconv.create_model("convnext_atto")
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, layer_decay=0.5)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(1e-3 * g["lr_scale"])
    sched = build_scheduler(opt, total_steps=10, warmup_steps=2, lr=1e-3, min_lr=1e-5)
    head = max(opt.param_groups, key=lambda g: g["lr_scale"])
    seen = []
    for _ in range(10):
        seen.append(head["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(5e-4) and seen[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(seen[1:], seen[2:]))


def test_warmup_cosine_shape():
    f = [warmup_cosine_factor(s, 100, 10, 0.01) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:9], f[1:10]))  # linear rise
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.01 + 0.99 * 0.5)  # cosine half-way
    assert f[100] == pytest.approx(0.01)
    assert all(b <= a for a, b in zip(f[10:], f[11:]))


def test_one_cycle_shape():
    f = [one_cycle_factor(s, 50, 20) for s in range(51)]
    assert f[19] == pytest.approx(1.0) and f[50] == 0.0 and f[35] == pytest.approx(0.5)


def test_ema_is_an_exponential_average():
    model = torch.nn.Linear(3, 2)
    ema = build_ema(model, decay=0.9)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update_parameters(model)
    expected = 0.9 * (start + 1) + 0.1 * (start + 2)
    assert torch.allclose(ema.module.weight, expected)


def cli_options(argv: list[str]) -> dict:
    """The config options ``modernconv train ARGV`` gives."""
    args, extra = build_parser(["train", *argv]).parse_known_args(["train", *argv])
    assert not extra
    return overrides_from(args, TrainConfig)


def test_config_overrides_and_validation(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: convnextv2_atto\nepochs: 3\nscale: [0.2, 1.0]\nlayer_decay: 0.9\n")
    cfg = load_config(recipe, cli_options(["--epochs", "5", "--lr=1e-3", "--channels-last"]))
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.scale, cfg.layer_decay, cfg.channels_last) == (
        "convnextv2_atto", 5, 1e-3, (0.2, 1.0), 0.9, True)
    cfg.save(tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == cfg
    for bad, message in [({"epochs": "0"}, "epochs must be at least 1"), ({"lr": "fast"}, "cannot use 'fast'"),
                         ({"precision": "fp8"}, "precision must be"), ({"hflip": "1.5"}, "between 0 and 1"),
                         ({"scale": "[0.5]"}, "cannot use"), ({"ema_decay": "1"}, "ema_decay")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(None, bad)
    with pytest.raises(ConfigError, match="unknown option --epoch .did you mean --epochs"):
        check_key("--epoch")  # a flag: answered with flags
    with pytest.raises(ConfigError, match="unknown option 'epoch' .did you mean epochs"):
        check_key("epoch")  # a recipe key: answered with keys
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("epochs: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_defaults_equal_the_digits_recipe():
    assert load_config(CONFIGS / "digits_convnext.yaml") == TrainConfig()


@pytest.mark.parametrize("recipe", sorted(p for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("fcmae")),
                         ids=lambda p: p.stem)
def test_every_recipe_is_valid(recipe):
    cfg = load_config(recipe)
    assert cfg.model in modernconv.list_models()


def test_schedule_and_precision_names_are_checked_everywhere():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="sched must be one of cosine, onecycle, step, poly, got 'linear'"):
        build_scheduler(optimizer, 10, 1, 1.0, 0.0, "linear")
    with pytest.raises(ConfigError, match="sched must be one of cosine, onecycle, step, poly, got 'linear'"):
        load_config(None, {"sched": "linear"})
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16, got 'fp8'"):
        load_config(None, {"precision": "fp8"})


@pytest.mark.parametrize("argv", [["--betas", "0.8", "0.95"], ["--betas", "0.8,0.95"], ["--betas=[0.8, 0.95]"]])
def test_list_options_take_the_natural_forms(argv):
    assert load_config(None, cli_options(argv)).betas == (0.8, 0.95)


@pytest.mark.parametrize("values, message", [
    ({"lr": "nan"}, "lr: cannot use 'nan'"), ({"epochs": "inf"}, "epochs: cannot use 'inf'"),
    ({"lr": "-1"}, "lr must be at least 0"), ({"min_lr": "1", "lr": "0.1"}, "min_lr (1.0) is above lr (0.1)"),
    ({"crop_pct": "0"}, "crop_pct must be in (0, 1]"), ({"workers": "100000"}, "workers must be between 0 and 256"),
    ({"eps": "0"}, "eps must be positive"), ({"betas": "[0.9, 1.5]"}, "betas must be in [0, 1)"),
    ({"warmup_epochs": "-1"}, "warmup_epochs must be at least 0"), ({"randaugment_ops": "-2"}, "randaugment_ops"),
    ({"layer_scale_init_value": "-1"}, "layer_scale_init_value must be at least 0"),
    ({"channels_last": "maybe"}, "channels_last: cannot use 'maybe' as bool"),
])
def test_nonsense_settings_are_refused(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, values)


def test_recipe_mistakes_are_one_clear_line(tmp_path):
    (tmp_path / "keys.yaml").write_text("1: 2\n")
    with pytest.raises(ConfigError, match="option names must be text"):
        load_config(tmp_path / "keys.yaml")
    (tmp_path / "latin1.yaml").write_bytes("model: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(tmp_path / "latin1.yaml")


def test_help_lists_every_option_with_type_and_default(capsys):
    with pytest.raises(SystemExit):
        build_parser(["train", "--help"]).parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        assert f"--{field.name.replace('_', '-')}" in text
    assert ("learning-rate schedule, stepped per optimizer step (step: x0.1 after each third, ResNet's; poly: the "
            "dense tasks' linear decay) (one of: cosine, onecycle, step, poly) [default: cosine]") in text


def test_poly_schedule_is_mmcvs_with_linear_warm_up():
    """The authors' UperNet schedule: poly (power 1) over 160k iterations, linear warm-up over 1500 from 1e-6."""
    f = [warmup_poly_factor(s, 160_000, 1500, 0.0) for s in (0, 750, 1500, 80_000, 160_000)]
    assert f[0] == pytest.approx(1e-6) and f[1] == pytest.approx((1 - 750 / 160_000) * (0.5 + 0.5 * 1e-6))
    assert f[2] == pytest.approx(1 - 1500 / 160_000) and f[3] == pytest.approx(0.5) and f[4] == 0.0


def test_the_classification_report_equals_scikit_learns():
    from sklearn.metrics import precision_recall_fscore_support

    from modernconv.engine.evaluate import EvalResult

    truth = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    guess = torch.tensor([0, 1, 0, 1, 1, 2, 0, 2, 1, 0])  # class 3 is never predicted
    confusion = torch.zeros(4, 4, dtype=torch.long)
    confusion.index_put_((truth, guess), torch.ones(10, dtype=torch.long), accumulate=True)
    rows, macro = EvalResult(0.0, 0.0, 0.0, 10, confusion).classification_report()
    p, r, f, n = precision_recall_fscore_support(truth, guess, labels=[0, 1, 2, 3], zero_division=0)
    for row, *expected in zip(rows, p, r, f, n):
        assert [row["precision"], row["recall"], row["f1"]] == pytest.approx([100 * v for v in expected[:3]])
        assert row["support"] == expected[3]
    mp, mr, mf, _ = precision_recall_fscore_support(truth, guess, average="macro", zero_division=0)
    assert [macro["precision"], macro["recall"], macro["f1"]] == pytest.approx([100 * mp, 100 * mr, 100 * mf])
