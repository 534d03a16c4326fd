"""Build the compiled form of ``dsl/ocpi_fast.py`` (mypyc): ``python -m dsl.native`` (``make native``,
run by ``make install``).

The module is compiled as ``dsl._ocpi_fast_c`` (two extension files next to this one: the module and
mypyc's runtime library for it) from a copy of the source that ends in the source's sha256
(``SOURCE_SHA256``). ``dsl.ocpi`` uses the compiled module only while that hash is the hash of
``ocpi_fast.py`` as it is now, so an edit of the source without a rebuild runs the plain module (the
same output, slower), never stale compiled code. Without a C compiler or mypyc the build reports why
and the plain module is used."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("ocpi_fast.py")
NAME = "_ocpi_fast_c"


def source_sha256() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def build(dest: Path, name: str = NAME) -> list[Path]:
    """Compile ``ocpi_fast.py`` as ``dsl.<name>`` and copy its extension files into ``dest``
    (which must be a folder of the ``dsl`` package's path to be imported); returns them."""
    sha = source_sha256()
    with tempfile.TemporaryDirectory(prefix="evbill-native-") as tmp:
        pkg = Path(tmp) / "dsl"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / f"{name}.py").write_text(SOURCE.read_text(encoding="utf-8") + f'\n\nSOURCE_SHA256 = "{sha}"\n',
                                        encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "mypyc", f"dsl/{name}.py"], cwd=tmp, capture_output=True,
                              text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"mypyc failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        built = sorted(pkg.glob(f"{name}*.so")) + sorted(pkg.glob(f"{name}*.pyd"))
        if not built:
            raise RuntimeError(f"mypyc made no extension module:\n{proc.stdout[-3000:]}")
        dest.mkdir(parents=True, exist_ok=True)
        out = []
        for path in built:
            target = dest / path.name
            tmp_target = target.with_name(target.name + ".tmp")
            shutil.copyfile(path, tmp_target)
            tmp_target.replace(target)  # a process importing it meanwhile sees the old file or the new
            out.append(target)
        return out


def main() -> int:
    try:
        built = build(Path(__file__).parent)
    except (OSError, RuntimeError) as exc:
        print(f"dsl/ocpi_fast.py not compiled ({exc}); `evbill ocpi price` runs it as plain Python", file=sys.stderr)
        return 0
    print("compiled dsl/ocpi_fast.py: " + ", ".join(p.name for p in built))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
