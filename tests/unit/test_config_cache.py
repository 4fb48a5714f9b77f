"""The parsed-config cache (.labdeck/config-cache.json): an unchanged file is answered without a
parse, a changed one is read again, and warnings come out the same from the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backends import yamlfile
from backends.errors import ConfigError
from backends.project import CONFIG_CACHE, Project


def _project(tmp_path: Path, compute: str) -> Project:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / ".labdeck").mkdir()
    path = tmp_path / "aml_config" / "box.compute"
    path.write_text(compute)
    _settle(path)
    return Project(tmp_path)


def _settle(path: Path) -> None:
    """Age the file past the cache's "racily clean" window (mtime only; ctime moves too)."""
    old = os.stat(path).st_mtime_ns - 5 * yamlfile.CACHE_SETTLE_NS
    os.utime(path, ns=(old, old))


@pytest.fixture
def no_parse(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts real parses."""
    parsed: list[Path] = []
    real = yamlfile._parse

    def counting(path: Path, allow_json: bool, allow_empty: bool) -> yamlfile.MappingFile:
        parsed.append(path)
        return real(path, allow_json, allow_empty)

    monkeypatch.setattr(yamlfile, "_parse", counting)
    monkeypatch.setattr(yamlfile, "CACHE_SETTLE_NS", 0)  # ctime cannot be aged in a test
    return parsed


def test_unchanged_file_is_answered_from_the_cache(tmp_path: Path, no_parse: list[Path]) -> None:
    project = _project(tmp_path, 'type: "docker"\nbaseDockerImage: "img:1"\n')
    first = project.resolve("box")
    assert (tmp_path / ".labdeck" / CONFIG_CACHE).is_file()
    second = project.resolve("box")
    assert len(no_parse) == 1
    assert first.compute == second.compute


def test_changed_file_is_read_again(tmp_path: Path, no_parse: list[Path]) -> None:
    project = _project(tmp_path, 'type: "docker"\nbaseDockerImage: "img:1"\n')
    assert project.resolve("box").compute.base_docker_image == "img:1"
    path = tmp_path / "aml_config" / "box.compute"
    path.write_text('type: "docker"\nbaseDockerImage: "img:2"\n')  # same size
    assert project.resolve("box").compute.base_docker_image == "img:2"
    assert len(no_parse) == 2


def test_warnings_are_the_same_from_the_cache(tmp_path: Path, no_parse: list[Path]) -> None:
    project = _project(tmp_path, 'type: "docker"\n\ncolour: "blue"\n')
    parsed = [str(w) for w in project.resolve("box").warnings]
    cached = [str(w) for w in project.resolve("box").warnings]
    assert len(no_parse) == 1
    assert cached == parsed
    assert parsed == [f"{tmp_path / 'aml_config' / 'box.compute'}:3: unknown key 'colour' ignored"]


def test_errors_are_not_cached(tmp_path: Path, no_parse: list[Path]) -> None:
    project = _project(tmp_path, 'type: "kubernetes"\n')
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"box\.compute:1: unknown type"):
            project.resolve("box")
    (tmp_path / "aml_config" / "bad.compute").write_text('type: "docker\n')
    for _ in range(2):
        with pytest.raises(ConfigError, match="invalid YAML"):
            project.resolve("bad")
    assert len(no_parse) == 4  # a resolve that fails saves nothing: each is a fresh parse


def test_what_json_cannot_hold_is_not_cached(tmp_path: Path, no_parse: list[Path]) -> None:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / ".labdeck").mkdir()
    rc = tmp_path / "aml_config" / "r.runconfig"
    rc.write_text('Target: "local"\nDataSourceSettings:\n  when: 2020-01-01\n  1: one\n')
    project = Project(tmp_path)
    first = project.resolve("r").runconfig.data_source_settings
    second = project.resolve("r").runconfig.data_source_settings
    assert first == second and 1 in second
    assert len(no_parse) == 2


def test_a_broken_cache_file_means_a_parse(tmp_path: Path, no_parse: list[Path]) -> None:
    project = _project(tmp_path, 'type: "local"\n')
    cache = tmp_path / ".labdeck" / CONFIG_CACHE
    for junk in ("{not json", json.dumps({"version": 1, "entries": {"x": 1}}), "[]"):
        cache.write_text(junk)
        assert project.resolve("box").compute.type == "local"
    assert len(no_parse) == 3


def test_no_state_folder_is_created(tmp_path: Path, no_parse: list[Path]) -> None:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / "aml_config" / "box.compute").write_text('type: "local"\n')
    Project(tmp_path).resolve("box")
    assert not (tmp_path / ".labdeck").exists()


def test_a_just_written_file_is_not_cached(tmp_path: Path, no_parse: list[Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Changed again within the clock's granularity, it could keep its size and mtime."""
    monkeypatch.setattr(yamlfile, "CACHE_SETTLE_NS", 3600 * 10**9)
    project = _project(tmp_path, 'type: "local"\n')
    project.resolve("box")
    project.resolve("box")
    assert len(no_parse) == 2


def test_threads_resolving_at_once_each_keep_their_cache(tmp_path: Path) -> None:
    """The dashboard resolves targets in several worker threads at once (a shared module-level
    cache once let one thread's exit pull the cache from under another's)."""
    import threading

    (tmp_path / "aml_config").mkdir()
    for i in range(4):
        (tmp_path / "aml_config" / f"t{i}.compute").write_text('type: "local"\n')
    project = Project(tmp_path)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for _ in range(200):
                assert project.resolve(name).compute.name == name
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
