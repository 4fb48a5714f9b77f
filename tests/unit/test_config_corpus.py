"""A corpus of bad project files: each must give ONE line naming file (and line), exit 2, no
traceback, and leave no run behind."""

from __future__ import annotations

import pytest

from tests.conftest import Project

GOOD_COMPUTE = 'type: "local"\n'
GOOD_RUNCONFIG = 'ArgumentVector:\n  - "$file"\nTarget: "local"\nFramework: "Python"\n'

# (file name, content, text the error must contain: file:line and the cause)
CORPUS = [
    ("bad.compute", 'type: "docker\n', "bad.compute:2: invalid YAML: found unexpected end"),
    ("bad.compute", "type: local\n  address: x\n", "bad.compute:2: invalid YAML"),
    ("bad.compute", "", "bad.compute:1: file is empty"),
    ("bad.compute", "- type: local\n", "bad.compute:1: expected a mapping of keys, found a list"),
    ("bad.compute", "just words\n", "bad.compute:1: expected a mapping of keys, found a string"),
    ("bad.compute", 'address: "h.invalid"\n', "bad.compute:1: missing required key 'type'"),
    ("bad.compute", 'type: "kubernetes"\n', "bad.compute:1: unknown type 'kubernetes'"),
    (
        "bad.compute",
        'type: "remotedocker"\nusername: "u"\n',
        "bad.compute:1: missing required key 'address' for type 'remotedocker'",
    ),
    (
        "bad.compute",
        'type: "docker"\nsharedVolumes: "maybe"\n',
        "bad.compute:2: sharedVolumes must be true or false, got 'maybe'",
    ),
    (
        "bad.compute",
        'type: "docker"\nnvidiaDocker: 3\n',
        "bad.compute:2: nvidiaDocker must be true or false, got 3",
    ),
    (
        "bad.compute",
        'type: "docker"\nbaseDockerImage: [a, b]\n',
        "bad.compute:2: baseDockerImage must be a string, got a list",
    ),
    ("bad.compute", 'type: "docker"\ngpus: -2\n', "bad.compute:2: gpus count must be at least 1"),
    ("bad.compute", 'type: "docker"\ngpus: "some"\n', "bad.compute:2: gpus: cannot read 'some'"),
    (
        "bad.compute",
        'type: "local"\ngpus: "all"\n',
        "bad.compute:2: GPUs are requested but type 'local' does not run containers",
    ),
    (
        "bad.compute",
        'type: "cluster"\naddress: "h.invalid"\nyarnDeployMode: "sideways"\n',
        "bad.compute:3: yarnDeployMode must be 'cluster' or 'client'",
    ),
    (
        "bad.compute",
        'type: "remotedocker"\naddress: "h.invalid"\nport: 99999\n',
        "bad.compute:3: port must be a number 1-65535",
    ),
    ("bad.compute", 'type: "local"\ntype: "docker"\n', "bad.compute:2: duplicate key 'type'"),
    ("bad.compute", "type: local\n1: x\n", "bad.compute:2: key '1' is not a name"),
    (
        "bad.runconfig",
        'ArgumentVector: "$file"\nTarget: "local"\n',
        "bad.runconfig:1: ArgumentVector must be a list, got '$file'",
    ),
    (
        "bad.runconfig",
        'ArgumentVector: ["$file"]\n',
        "bad.runconfig:1: missing required key 'Target'",
    ),
    (
        "bad.runconfig",
        'Target: "local"\nFramework: "R"\n',
        "bad.runconfig:2: Framework must be PySpark or Python, got 'R'",
    ),
    (
        "bad.runconfig",
        'Target: "local"\nEnvironmentVariables: [A, B]\n',
        "bad.runconfig:2: EnvironmentVariables must be a mapping, got a list",
    ),
    (
        "bad.runconfig",
        'Target: "local"\nEnvironmentVariables:\n  A:\n    nested: 1\n',
        "bad.runconfig:2: EnvironmentVariables.A must be a plain value",
    ),
    (
        "bad.runconfig",
        'Target: "nowhere"\n',
        "bad.runconfig:1: Target 'nowhere' has no nowhere.compute",
    ),
    (
        "bad.runconfig",
        '{\n  "Target": "local",\n  "Framework": \n}\n',
        "bad.runconfig:4: invalid JSON",
    ),
    (
        "bad.runconfig",
        '{\n  "Target": "local",\n  "PrepareEnvironment": "often"\n}\n',
        "bad.runconfig:3: PrepareEnvironment must be true or false, got 'often'",
    ),
    (
        "bad.runconfig",
        'Target: "local"\nCondaDependenciesFile: "aml_config/missing.yml"\n',
        "bad.runconfig:2: dependency file 'aml_config/missing.yml' not found",
    ),
    (
        "conda_dependencies.yml",
        "dependencies: numpy\n",
        "conda_dependencies.yml:1: dependencies must be a list",
    ),
    (
        "conda_dependencies.yml",
        "dependencies:\n  - pip: [1, 2]\n",
        "conda_dependencies.yml:1: pip entries must be strings",
    ),
    (
        "conda_dependencies.yml",
        "dependencies:\n  - pip:\n    - --index-url https://example.invalid/simple\n",
        "conda_dependencies.yml:3: pip entry '--index-url https://example.invalid/simple' is a "
        "pip option",
    ),
    (
        "spark_dependencies.yml",
        "packages:\n  - group: a\n    artifact: b\n",
        "spark_dependencies.yml:1: package entry lacks version",
    ),
    (
        "spark_dependencies.yml",
        "configuration: [1]\n",
        "spark_dependencies.yml:1: configuration must be a mapping",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), CORPUS, ids=[f"{i:02d}-{c[0]}" for i, c in enumerate(CORPUS)]
)
def test_bad_file_gives_one_line_error(
    project: Project, name: str, content: str, expected: str
) -> None:
    project.write("hello.py", "print('hi')\n")
    project.write(f"aml_config/{name}", content)
    if not name.endswith((".runconfig", ".compute")):  # a dependency file: a runconfig reads it
        runconfig = GOOD_RUNCONFIG
        if name.startswith("spark"):  # read for Spark runs only
            runconfig = runconfig.replace('"Python"', '"PySpark"')
        project.write("aml_config/bad.runconfig", runconfig)
    target = "bad"
    res = project.cli("submit", "-c", target, "hello.py")
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if not line.startswith("labdeck: warning")]
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert expected in lines[0], lines[0]
    assert lines[0].startswith("labdeck: error: ")
    assert str(project.root / "aml_config") in lines[0]
    # nothing half-done: no run was recorded
    listing = project.cli("runs", "list", "-o", "json")
    assert listing.stdout.strip() in ("", "[]"), listing.stdout


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize(
    ("content", "warning"),
    [
        ('type: "local"\ncolour: "blue"\n', "local.compute:2: unknown key 'colour' ignored"),
        ('type: "local"\npassword: "hunter2"\n', "local.compute:2: clear-text password"),
        (
            'type: "local"\npassword: "AzureMlSecret=vm#me#00ff"\n',
            "local.compute:2: password is a Workbench key-store reference",
        ),
    ],
)
def test_warnings_name_file_and_line(project: Project, content: str, warning: str) -> None:
    project.write("aml_config/local.compute", content)
    project.write("hello.py", "print('hi')\n")
    res = project.cli("submit", "-c", "local", "--explain", "hello.py")
    assert res.returncode == 0, res.stderr
    assert warning in res.stdout + res.stderr
    assert "hunter2" not in res.stdout + res.stderr


def test_password_kept_by_labdeck_is_no_warning(project: Project) -> None:
    """``target attach --password-stdin`` leaves a reference to the password it kept outside
    the project: nothing to warn about (it was called clear text before)."""
    project.write("aml_config/local.compute", 'type: "local"\npassword: "LabdeckSecret=vm-1"\n')
    project.write("hello.py", "print('hi')\n")
    res = project.cli("submit", "-c", "local", "--explain", "hello.py")
    assert res.returncode == 0, res.stderr
    assert "warning" not in res.stdout + res.stderr
