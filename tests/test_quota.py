"""Disk quotas and adapter zips on a shared server (issue 18): each test is the attack."""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile

import pytest

from eval.config import RunConfig
from eval.store.runs import RunStore
from service.jobs import JobQueue
from service.quota import QuotaExceeded, adapter_uploads_dir, owner_disk_use, save_adapter_upload
from strategies.lora.deploy import unpack_adapter_zip

CONFIG = json.dumps({"peft_type": "LORA", "r": 4})


def declaring(member: bytes, name: str, size: int) -> bytes:
    """An adapter zip whose `name` member is `member` deflated but declares `size` bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("adapter_config.json", CONFIG)
        zf.writestr(name, member)
    data = bytearray(buf.getvalue())
    for sig, size_at, name_len_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        at = data.find(sig)
        while at >= 0:
            (n,) = struct.unpack_from("<H", data, at + name_len_at)
            if data[at + name_at : at + name_at + n] == name.encode():
                struct.pack_into("<I", data, at + size_at, size)
            at = data.find(sig, at + 4)
    return bytes(data)


def adapter_zip(weights: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("adapter_config.json", CONFIG)
        zf.writestr("adapter_model.safetensors", weights)
    return buf.getvalue()


def test_a_10_kb_zip_declaring_500_mb_is_refused_before_anything_is_written(tmp_path):
    bomb = declaring(b"\0" * 8_000_000, "adapter_model.safetensors", 500_000_000)
    assert len(bomb) < 12_000
    assert zipfile.ZipFile(io.BytesIO(bomb)).getinfo("adapter_model.safetensors").file_size == (
        500_000_000
    )
    with pytest.raises(ValueError, match="zip bomb"):
        unpack_adapter_zip(bomb, tmp_path / "adapters" / "x", root=tmp_path)
    with pytest.raises(ValueError, match="zip bomb"):
        save_adapter_upload(tmp_path, "owner1", RunStore(tmp_path / "runs.sqlite"), "x", bomb)
    assert not [p for p in (tmp_path / "adapters").rglob("*") if p.is_file()]


def test_a_new_upload_of_the_same_adapter_replaces_the_old_folder(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    first = save_adapter_upload(tmp_path, "owner1", store, "mine", adapter_zip(os.urandom(1000)))
    (first / "leftover.bin").write_bytes(b"old")
    for _ in range(5):
        again = save_adapter_upload(tmp_path, "owner1", store, "mine", adapter_zip(b"new"))
    assert again == first and not (first / "leftover.bin").exists()
    assert [p.name for p in adapter_uploads_dir(tmp_path, "owner1").iterdir()] == ["mine"]


def test_an_owner_past_their_quota_can_neither_upload_nor_queue_a_run(tmp_path, mini_corpus):
    (tmp_path / "worker_limits.yaml").write_text("owner_disk_mb: 1\n")
    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(QuotaExceeded, match="quota"):  # 2 MB of weights, 1 MB quota
        save_adapter_upload(tmp_path, "hog", store, "big", adapter_zip(os.urandom(2_000_000)))
    save_adapter_upload(tmp_path, "hog", store, "small", adapter_zip(os.urandom(600_000)))
    with pytest.raises(QuotaExceeded):  # 600 KB + 600 KB is over 1 MB
        save_adapter_upload(tmp_path, "hog", store, "other", adapter_zip(os.urandom(600_000)))
    # Replacing the same adapter frees its old space first.
    save_adapter_upload(tmp_path, "hog", store, "small", adapter_zip(os.urandom(700_000)))
    assert owner_disk_use(tmp_path, "hog", store).used > 650_000
    (adapter_uploads_dir(tmp_path, "hog") / "small" / "pad.bin").write_bytes(os.urandom(400_000))
    corpus, qa = mini_corpus
    config = RunConfig(corpus=str(corpus), qa=str(qa), strategies=["fake"])
    queue = JobQueue(store.path)
    with pytest.raises(QuotaExceeded, match="a new run"):
        queue.submit(config, owner="hog")
    queue.submit(config, owner="someone else")  # others are not blocked
    assert owner_disk_use(tmp_path, "someone else", store).used == 0


def test_corpus_uploads_count_against_the_disk_quota(tmp_path):
    """Issue 32: 8.6 MB of corpus was saved against a 1 MB quota. Now a corpus is refused from
    its declared size before a byte is written, and a saved one counts in the owner's use."""
    from service.quota import save_corpus_upload

    (tmp_path / "worker_limits.yaml").write_text("owner_disk_mb: 1\n")
    store = RunStore(tmp_path / "runs.sqlite")
    big = [(f"d{i}.txt", b"word " * 100_000) for i in range(2)]  # 1,000,000 bytes
    with pytest.raises(QuotaExceeded, match="this corpus would take your files past"):
        save_corpus_upload(tmp_path, "owner1", store, "big", big + [("d3.txt", b"x" * 200_000)])
    assert not list((tmp_path / "corpora").glob("*/docs/*"))  # nothing written
    save_corpus_upload(tmp_path, "owner1", store, "fits", big)
    assert owner_disk_use(tmp_path, "owner1", store).used >= 1_000_000
    with pytest.raises(QuotaExceeded):
        save_corpus_upload(tmp_path, "owner1", store, "second", [("e.txt", b"y" * 100_000)])
    save_corpus_upload(tmp_path, "owner2", store, "theirs", [("e.txt", b"y" * 100_000)])


def _stored_zip(weights: bytes) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("adapter_config.json", CONFIG)
        zf.writestr("adapter_model.safetensors", weights)
    return bytearray(buf.getvalue())


def _set_encrypted(data: bytearray) -> bytes:
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        while at >= 0:
            data[at + flag_at] |= 1
            at = data.find(sig, at + 4)
    return bytes(data)


def _bad_crc(data: bytearray) -> bytes:
    at = data.find(b"WEIGHTS")
    data[at] ^= 0xFF  # the stored bytes change, their CRC-32 does not
    return bytes(data)


@pytest.mark.parametrize(
    "name, data, words",
    [
        ("encrypted", _set_encrypted(_stored_zip(b"WEIGHTS" * 10)), "password-protected"),
        ("bad CRC", _bad_crc(_stored_zip(b"WEIGHTS" * 10)), "damaged"),
        ("not a zip", b"PK\x03\x04 and then nothing", "not a zip file"),
        ("cut short", bytes(_stored_zip(b"WEIGHTS" * 10))[:-30], "not a zip file"),
    ],
)
def test_every_broken_adapter_zip_is_a_clear_refusal(tmp_path, name, data, words):
    """Issue 32: an encrypted or bad-CRC zip raised RuntimeError/BadZipFile past the page's
    ValueError handler (a traceback). Each is now a ValueError saying what is wrong, and
    nothing is left on disk."""
    with pytest.raises(ValueError, match=words):
        save_adapter_upload(tmp_path, "owner1", RunStore(tmp_path / "runs.sqlite"), "x", data)
    assert not [p for p in (tmp_path / "adapters").rglob("*") if p.is_file()]
