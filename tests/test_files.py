"""Atomic file writes, the evaluation-mode context and the preprocessing record."""
import json

import pytest
import torch

import modernconv
from modernconv.data import DataConfig
from modernconv.errors import ConfigError
from modernconv.files import atomic_write, atomic_write_text, remove_stale_temporaries
from modernconv.models import model_data_config
from modernconv.runtime import eval_mode


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def half_then_fail(tmp):
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path):
    (tmp_path / ".last.safetensors.abc.tmp").write_text("partial")
    (tmp_path / "last.safetensors").write_text("whole")
    assert [p.name for p in remove_stale_temporaries(tmp_path)] == [".last.safetensors.abc.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]


def test_eval_mode_restores_the_training_flag_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Dropout(), torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            assert not model.training and not model[0].training
            raise RuntimeError
    assert model.training and model[0].training
    model.eval()
    with eval_mode(model):
        pass
    assert not model.training


def test_preprocessing_round_trips_through_metadata_and_is_bounded():
    pre = DataConfig((1, 48, 48), (0.5,), (0.25,), 0.9, "bilinear")
    assert DataConfig.from_metadata(pre.to_metadata(), DataConfig()) == pre
    legacy = {"eval": json.dumps(dict(img_size=32, mean=[0.1] * 3, std=[0.2] * 3, crop_pct=1.0,
                                      interpolation="bicubic"))}
    assert DataConfig.from_metadata(legacy, DataConfig()).input_size == (3, 32, 32)
    assert DataConfig.from_metadata({}, pre) is pre
    huge = {"preprocessing": json.dumps({**pre.to_dict(), "input_size": [1, 100000, 100000]})}
    with pytest.raises(ConfigError, match="sides 1..8192"):
        DataConfig.from_metadata(huge, DataConfig())
    with pytest.raises(ConfigError, match="malformed preprocessing"):
        DataConfig.from_metadata({"preprocessing": "{}"}, DataConfig())


def test_a_models_preprocessing_comes_without_building_it():
    assert model_data_config("convnext_atto", in_chans=1) == modernconv.create_model("convnext_atto",
                                                                                      in_chans=1).data_config
    assert model_data_config("convmixer_256_8").input_size == (3, 32, 32)
    with pytest.raises(ConfigError, match="does not take 'kernel'"):
        model_data_config("convnext_atto", kernel=3)


def test_written_files_get_the_usual_mode_not_a_private_one(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        modernconv.save_checkpoint({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o644
