"""The environment image's tag depends on its inputs only (issue 12, item 1): two projects with
the same base and dependencies share it; a dependency that is a path keeps a per-project tag."""

from __future__ import annotations

from backends.docker.env import EnvSpec


def spec(project: str, *pip: str) -> EnvSpec:
    return EnvSpec(project=f"/work/{project}", project_name=project, base="img", pip=pip)


def test_same_inputs_same_tag_whatever_the_project_unless_a_path() -> None:
    one, two = spec("alpha", "numpy==1.26"), spec("Beta Proj", "numpy==1.26")
    assert one.env_tag("sha256:1") == two.env_tag("sha256:1")
    assert str(one.env_tag("sha256:1")).startswith("labdeck-env/shared:")
    assert one.env_tag("sha256:1") != one.env_tag("sha256:2")  # another base image
    assert one.env_tag("sha256:1") != spec("alpha", "numpy==2.0").env_tag("sha256:1")
    assert spec("a", "pkg @ https://x.org/p.whl").repository == "labdeck-env/shared"
    # A dependency that is a path is the project's own content: its tag stays per project.
    for entry in ("./lib", "-e ./lib", "file:///tmp/x.whl", "libs/mine", "/abs/pkg"):
        assert spec("Beta Proj", entry).env_tag("sha256:1").startswith(  # type: ignore[union-attr]
            "labdeck-env/beta-proj:"), entry
