"""The sample's iris sweep as a user runs it: best run first, found by name and by a condition."""

import json

from tests.conftest import Project


def test_iris_sweep_best_first_and_found_by_name_and_metric(sample_copy: Project) -> None:
    res = sample_copy.cli("sweep", "start", "-c", "local", "iris_sklearn.py",
                          "--grid", "rate=0.01,30,300", "--parallel", "3", "--name", "iris",
                          timeout=300)
    assert res.returncode == 0, res.stderr
    runs = json.loads(sample_copy.cli("runs", "list", "-o", "json", check=True).stdout)
    assert len(runs) == 3 and all(r["status"] == "completed" for r in runs)
    accuracy = {r["name"]: r["metrics"]["Accuracy"] for r in runs}
    assert {r["name"]: r["metrics"]["Regularization Rate"] for r in runs} == {
        "iris-1": 0.01, "iris-2": 30, "iris-3": 300}
    # The rate matters in this sample: the strongest regularisation is clearly worse.
    assert accuracy["iris-1"] > accuracy["iris-3"]

    sweep_id = runs[0]["sweep"]
    shown = json.loads(sample_copy.cli("sweep", "show", sweep_id, "--sort", "Accuracy",
                                       "-o", "json", check=True).stdout)
    assert shown["runs"][0]["metrics"]["Accuracy"] == max(accuracy.values())

    by_name = json.loads(sample_copy.cli("runs", "show", "iris-3", "-o", "json",
                                         check=True).stdout)
    assert by_name["metrics"]["Regularization Rate"] == 300
    best = max(accuracy.values())
    found = json.loads(sample_copy.cli("runs", "list", "--where",
                                       f"Accuracy >= {best} and Regularization Rate < 1",
                                       "-o", "json", check=True).stdout)
    assert [r["name"] for r in found] == ["iris-1"]
