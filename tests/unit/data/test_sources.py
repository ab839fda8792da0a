"""service.data.sources: local paths only under the data roots (after every symlink is resolved), none when
the roots are unset, any with ``roots=None`` (the CLI); the format from the suffix; missing paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.config import Settings
from service.data.sources import Files, format_of, open_files
from service.data.tables import read_table
from service.errors import DataAccessError, InvalidInputError

CSV = "a,y\n1,0\n2,1\n"


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """``base/root`` (the data root) beside ``base/outside.csv``, with the ways out a caller might try."""
    base = tmp_path / "base"
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "in.csv").write_text(CSV)
    (root / "sub" / "part-0.csv").write_text(CSV)
    (root / "sub" / "part-1.csv").write_text("a,y\n3,0\n")
    outside = base / "outside.csv"
    outside.write_text("a,y\n99,1\n")
    (root / "link.csv").symlink_to(outside)
    (root / "mixed").mkdir()
    (root / "mixed" / "ok.csv").write_text(CSV)
    (root / "mixed" / "evil.csv").symlink_to(outside)
    (root / "up").symlink_to(base, target_is_directory=True)
    (root / "inner.csv").symlink_to(root / "in.csv")  # a symlink that stays inside is fine
    return {"base": base, "root": root, "outside": outside}


def refused(uri: str, roots: list[Path], fmt: str | None = None) -> DataAccessError:
    with pytest.raises(DataAccessError) as caught:
        open_files(uri, fmt, roots=roots)
    assert "LOGREG_DATA_ROOTS" in str(caught.value)
    assert caught.value.details == {"setting": "LOGREG_DATA_ROOTS"}
    return caught.value


def test_a_file_inside_a_root_reads(tree: dict[str, Path]) -> None:
    root = tree["root"]
    files = open_files(str(root / "in.csv"), roots=[root])
    assert isinstance(files, Files) and files.format == "csv" and files.paths == (str((root / "in.csv").resolve()),)
    assert files.total_bytes == len(CSV)
    table = read_table(files, target="y")
    assert table.X.tolist() == [[1.0], [2.0]] and table.labels.tolist() == [0, 1]  # type: ignore[union-attr]
    assert read_table(open_files(f"file://{root / 'in.csv'}", roots=[root]), target="y").X.tolist() == [[1.0], [2.0]]
    assert open_files(str(root / "inner.csv"), roots=[root]).paths == (str((root / "in.csv").resolve()),)


def test_a_directory_and_a_glob_inside_a_root_read_their_parts_in_name_order(tree: dict[str, Path]) -> None:
    root = tree["root"]
    for uri, fmt in [(str(root / "sub"), "csv"), (str(root / "sub" / "part-*.csv"), None)]:
        files = open_files(uri, fmt, roots=[root])
        assert [Path(p).name for p in files.paths] == ["part-0.csv", "part-1.csv"]
        assert read_table(files, target="y").X.tolist() == [[1.0], [2.0], [3.0]]


def test_one_of_several_roots_is_enough(tree: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert open_files(str(tree["root"] / "in.csv"), roots=[other, tree["root"]]).paths


@pytest.mark.parametrize("where", [
    "root/../outside.csv",  # climbs out lexically
    "outside.csv",  # an absolute path outside
    "root/link.csv",  # a symlink inside the root to a file outside
    "root/up/outside.csv",  # through a symlinked directory
    "root/mixed",  # a directory inside the root holding a symlink to a file outside
    "root/mixed/*.csv",  # a glob matching it
    "root/*/../../outside.csv",  # a glob that climbs out
    "root/**/*.csv",  # a recursive glob that walks into root/up
    "root/../out*.csv",  # a glob outside
    "root/../nothing*.csv",  # a glob outside that matches nothing: refused all the same, so it tells nothing
    "root/*/../../nothing*.csv",
    "rootless/data.csv",  # a sibling whose name starts like the root's
])
def test_paths_that_lead_outside_the_roots_are_refused(tree: dict[str, Path], where: str) -> None:
    fmt = "csv" if where == "root/mixed" else None
    refused(str(tree["base"] / where), [tree["root"]], fmt)


def test_a_relative_path_is_resolved_from_the_working_directory(tree: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree["base"])
    assert open_files("root/in.csv", roots=[tree["root"]]).paths == (str((tree["root"] / "in.csv").resolve()),)
    refused("outside.csv", [tree["root"]])
    refused("root/../outside.csv", [tree["root"]])


def test_a_missing_path_outside_is_refused_before_it_is_looked_for(tree: dict[str, Path]) -> None:
    # "no such file" for a path outside would tell what exists there
    refused(str(tree["base"] / "missing.csv"), [tree["root"]])
    refused("/etc/no-such-file.csv", [tree["root"]])


def test_unset_roots_refuse_every_local_path_naming_the_setting(tree: dict[str, Path]) -> None:
    roots = Settings(model_store=tree["base"] / "store").data_root_paths()
    assert roots == []
    with pytest.raises(DataAccessError, match="LOGREG_DATA_ROOTS") as caught:
        open_files(str(tree["root"] / "in.csv"), roots=roots)
    assert "turned off" in str(caught.value)


def test_the_roots_setting_is_split_on_the_path_separator(tree: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(model_store=tmp_path / "store", data_roots=f"{tmp_path / 'x'}{os.pathsep}{tree['root']}")
    assert settings.data_root_paths() == [tmp_path / "x", tree["root"]]
    assert open_files(str(tree["root"] / "in.csv"), roots=settings.data_root_paths()).paths


def test_no_roots_for_the_cli_reads_anything(tree: dict[str, Path]) -> None:
    for uri in ["outside.csv", "root/link.csv", "root/mixed/*.csv", "root/../outside.csv"]:
        files = open_files(str(tree["base"] / uri), roots=None)
        assert files.paths
    assert read_table(open_files(str(tree["outside"]), roots=None), target="y").X.tolist() == [[99.0]]


@pytest.mark.parametrize(("uri", "fmt"), [
    ("t.csv", "csv"), ("T.CSV", "csv"), ("t.csv.gz", "csv"), ("T.CSV.GZ", "csv"), ("t.parquet", "parquet"),
    ("t.pq", "parquet"), ("dir/part-*.parquet", "parquet"), ("s3://bucket/key.csv", "csv"),
    ("s3://bucket/prefix.parquet/", "parquet"),
])
def test_the_format_is_inferred_from_the_suffix(uri: str, fmt: str) -> None:
    assert format_of(uri, None) == fmt


@pytest.mark.parametrize("uri", ["t.txt", "t", "dir/", "t.csv.zip", "t.parquet.bak"])
def test_a_format_that_cannot_be_inferred_must_be_given(tree: dict[str, Path], uri: str) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot tell the format of .* give `format` \('csv' or 'parquet'\)"):
        open_files(str(tree["root"] / uri), roots=[tree["root"]])
    assert format_of(uri, "csv") == "csv"


def test_a_given_format_wins_and_must_be_one_we_read(tree: dict[str, Path]) -> None:
    root = tree["root"]
    (root / "data.txt").write_text(CSV)
    assert read_table(open_files(str(root / "data.txt"), "csv", roots=[root]), target="y").X.shape == (2, 1)
    with pytest.raises(InvalidInputError, match="format must be 'csv' or 'parquet', got 'json'"):
        open_files(str(root / "in.csv"), "json", roots=[root])


def test_missing_paths_inside_a_root_are_invalid_input(tree: dict[str, Path]) -> None:
    root = tree["root"]
    with pytest.raises(InvalidInputError, match="no file or directory at"):
        open_files(str(root / "missing.csv"), roots=[root])
    with pytest.raises(InvalidInputError, match="no file matches"):
        open_files(str(root / "nothing-*.csv"), roots=[root])
    with pytest.raises(InvalidInputError, match="holds no parquet file"):
        open_files(str(root / "sub"), "parquet", roots=[root])
    with pytest.raises(InvalidInputError, match="no file or directory at"):
        open_files(str(root / "missing.csv"), roots=None)


@pytest.mark.parametrize("uri", ["", "   ", "http://example.com/t.csv", "ftp://host/t.csv"])
def test_what_is_not_a_path_or_s3_is_invalid_input(uri: str) -> None:
    with pytest.raises(InvalidInputError):
        open_files(uri, "csv", roots=None)


@pytest.mark.slow
def test_an_s3_endpoint_that_never_answers_fails_in_bounded_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listening socket that never replies: each S3 call gives up after botocore's bounds, not minutes."""
    import socket
    import threading
    import time

    from service.errors import SourceUnavailableError

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    credentials = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    start = time.monotonic()
    try:
        with pytest.raises(SourceUnavailableError, match=r"s3://bucket/key\.csv"):
            open_files("s3://bucket/key.csv", None, roots=None,
                       s3_endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}")
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - start < 40
