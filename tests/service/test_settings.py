import pytest
from pydantic import ValidationError

from service.core.config import Settings


def test_defaults_are_loopback_and_power_of_two_buckets(monkeypatch):
    for key in ("VIT_HOST", "VIT_MAX_BATCH_SIZE", "VIT_BATCH_BUCKETS", "VIT_PROVIDERS", "VIT_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.batch_buckets == [1, 2, 4, 8, 16]
    assert settings.batch_buckets[-1] == settings.max_batch_size
    assert settings.api_key is None


def test_environment_overrides_with_comma_lists(monkeypatch):
    monkeypatch.setenv("VIT_MAX_BATCH_SIZE", "12")
    monkeypatch.setenv("VIT_PROVIDERS", "cuda, cpu")
    monkeypatch.setenv("VIT_API_KEY", "s3cret")
    monkeypatch.setenv("VIT_VARIANT", "int8")
    settings = Settings()
    assert settings.batch_buckets == [1, 2, 4, 8, 12]
    assert settings.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.variant == "int8"


def test_explicit_buckets_are_sorted_and_must_cover_the_batch(monkeypatch):
    monkeypatch.setenv("VIT_BATCH_BUCKETS", "8,1,4")
    monkeypatch.setenv("VIT_MAX_BATCH_SIZE", "8")
    assert Settings().batch_buckets == [1, 4, 8]
    monkeypatch.setenv("VIT_MAX_BATCH_SIZE", "16")
    with pytest.raises(ValidationError, match="largest batch bucket"):
        Settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [("VIT_MAX_BATCH_SIZE", "0"), ("VIT_PORT", "70000"), ("VIT_VARIANT", "fp64"), ("VIT_MAX_QUEUE", "x")],
)
def test_invalid_values_are_refused(monkeypatch, key, value):
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


def test_empty_api_key_means_no_key(monkeypatch):
    monkeypatch.setenv("VIT_API_KEY", "")
    assert Settings().api_key is None
