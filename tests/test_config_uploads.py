"""Config validation and round-trips; upload limits."""

from __future__ import annotations

import pytest

from core.config import ChunkingConfig, ConfigError, ModelConfig, PriceTable
from eval.config import RunConfig
from service.uploads import (
    LIMITS_FILE,
    UploadLimits,
    load_limits,
    safe_name,
    save_documents,
    save_qa,
)


def test_run_config_round_trip_with_nested_sections():
    cfg = RunConfig(strategies=["rag"], strategy_configs={"rag": {"top_k": 5}}, n_test=3)
    again = RunConfig.from_yaml(cfg.to_yaml())
    assert again == cfg
    assert isinstance(again.models, ModelConfig)
    assert RunConfig.from_dict({"chunking": {"chunk_tokens": 64}}).chunking.chunk_tokens == 64
    assert RunConfig(split={"seed": 3}).split.seed == 3  # plain dicts become sections


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"strategies": []}, "at least one"),
        ({"strategies": ["rag", "rag"]}, "twice"),
        ({"strategies": ["nope"]}, "unknown strategy"),
        ({"strategy_configs": {"rag": {"top_k": -1}}}, "top_k"),
        ({"metrics": ["bleu"]}, "unknown metric"),
        ({"chunking": {"chunk_tokens": 64, "overlap_tokens": 64}}, "overlap"),
        ({"split": {"test_fraction": 1.5}}, "test_fraction"),
        ({"models": {"device": "tpu"}}, "device"),
        ({"colour": "red"}, "unknown option"),
    ],
)
def test_invalid_run_configs(bad, match):
    with pytest.raises(ConfigError, match=match):
        RunConfig.from_dict(bad)


def test_every_field_has_help():
    for cls in (RunConfig, ModelConfig, ChunkingConfig, PriceTable, UploadLimits):
        assert all(cls.help().values()), cls


def test_price_table_rates():
    p = PriceTable(cpu_per_hour=3.6, gpu_per_hour=36)
    assert p.per_second("cpu") == pytest.approx(0.001)
    assert p.per_second("cuda:0") == pytest.approx(0.01)


def test_upload_limits_and_names(tmp_path):
    limits = UploadLimits(max_file_mb=0.001, max_total_mb=0.002, max_files=4)
    files = [
        ("../../etc/passwd.txt", b"a" * 100),
        ("big.md", b"b" * 2000),
        ("virus.exe", b"x"),
        ("ok.md", b"hello"),
        ("late.md", b"more"),
    ]
    saved, refused = save_documents(files, tmp_path / "docs", limits)
    assert [p.name for p in saved] == ["passwd.txt", "ok.md"]
    assert all(p.parent == tmp_path / "docs" for p in saved)
    reasons = {e.name: e.reason for e in refused}
    assert "too large" in reasons["big.md"]
    assert "unsupported" in reasons["virus.exe"]
    assert "more than 4 files" in reasons["late.md"]
    assert safe_name("a/b\\c<d>.md") == "c_d_.md"
    with pytest.raises(ValueError, match="jsonl"):
        save_qa(("qa.xlsx", b"x"), tmp_path, limits)


def test_limits_file_sets_some_fields_and_bad_files_name_themselves(tmp_path):
    path = tmp_path / LIMITS_FILE
    assert load_limits(path) == UploadLimits()  # no file: the defaults
    path.write_text("max_files: 3\nmax_file_mb: 0.5\n")
    limits = load_limits(path)
    assert (limits.max_files, limits.max_file_mb) == (3, 0.5)
    assert limits.max_total_mb == UploadLimits().max_total_mb
    for text, problem in [
        ("max_files: 0\n", "max_files"),
        ("max_file_mb: lots\n", "lots"),
        ("max_size: 3\n", "unknown option"),
        ("- 1\n- 2\n", "mapping"),
        ("max_files: [\n", "upload_limits.yaml"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=problem) as info:
            load_limits(path)
        assert LIMITS_FILE in str(info.value)
