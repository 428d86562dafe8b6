import numpy as np
import pytest
import torch

from llmlib import device as dev


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("LLMLIB_DEVICE", raising=False)
    monkeypatch.delenv("LLMLIB_SMOKE", raising=False)


def test_default_device_follows_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.get_device() == torch.device("cpu")
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.get_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.get_device() == torch.device("cuda")


def test_env_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LLMLIB_DEVICE", "cpu")
    assert dev.get_device() == torch.device("cpu")


@pytest.mark.parametrize("value, message", [
    ("gpu0", "not a device name"),
    ("meta", "supports cpu, cuda and mps"),
])
def test_env_override_rejects_bad_names(monkeypatch, value, message):
    monkeypatch.setenv("LLMLIB_DEVICE", value)
    with pytest.raises(ValueError, match=message):
        dev.get_device()


def test_env_override_rejects_unavailable_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LLMLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        dev.get_device()


def test_run_mode(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert dev.run_mode() == "cpu"  # MPS machines get laptop sizes
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.run_mode() == "gpu"
    monkeypatch.setenv("LLMLIB_SMOKE", "1")
    assert dev.run_mode() == "smoke"
    monkeypatch.setenv("LLMLIB_SMOKE", "yes")
    with pytest.raises(ValueError, match="LLMLIB_SMOKE"):
        dev.run_mode()


def test_by_mode_picks_and_requires_every_mode():
    assert dev.by_mode(smoke=1, cpu=2, gpu=3, mode="cpu") == 2
    assert dev.by_mode(smoke=1, cpu=2, gpu=3, mode="smoke") == 1
    with pytest.raises(TypeError):
        dev.by_mode(smoke=1, cpu=2)  # a forgotten mode is caught at the call


def test_seed_everything_reproduces_all_generators():
    dev.seed_everything(7)
    first = (np.random.rand(), torch.rand(2).tolist(), __import__("random").random())
    dev.seed_everything(7)
    assert (np.random.rand(), torch.rand(2).tolist(), __import__("random").random()) == first
    dev.seed_everything(8)
    assert torch.rand(2).tolist() != first[1]
    with pytest.raises(ValueError, match="seed"):
        dev.seed_everything(-1)


def test_environment_summary_names_device_and_mode(monkeypatch):
    monkeypatch.setenv("LLMLIB_SMOKE", "1")
    monkeypatch.setenv("LLMLIB_DEVICE", "cpu")
    line = dev.environment_summary()
    assert "device cpu" in line and "run mode smoke" in line and torch.__version__ in line
    dev.synchronize("cpu")  # a no-op that must not fail without a GPU


def test_parse_device_checks_a_flag_and_names_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)
    assert dev.parse_device("cpu", "--device") == torch.device("cpu")
    assert dev.parse_device(None, "--device") == dev.get_device()
    assert dev.parse_device(torch.device("cpu")) == torch.device("cpu")
    for name, message in [("tpu9", "--device='tpu9' is not a device name"),
                          ("cuda:7", "--device='cuda:7': no such device"),
                          ("mps", "no such device, MPS needs an Apple-silicon Mac"),
                          ("meta", "supports cpu, cuda and mps")]:
        with pytest.raises(ValueError, match=message):
            dev.parse_device(name, "--device")


def test_model_device():
    assert dev.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
