import json

from tests.conftest import Project


def test_submit_hello_records_metrics_and_outputs(project: Project) -> None:
    project.write(
        "hello.py",
        """
        from azureml.logging import get_azureml_logger
        import os
        log = get_azureml_logger()
        print("hi")
        log.log("acc", 0.5)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/x.txt", "w").write("x")
    """,
    )
    res = project.cli("submit", "-c", "local", "hello.py")
    assert res.returncode == 0, res.stderr
    assert "hi" in res.stdout
    shown = json.loads(project.cli("runs", "last", "-o", "json", check=True).stdout)
    assert shown["status"] == "completed"
    assert shown["metrics"] == {"acc": 0.5}
    assert shown["outputs"] == ["x.txt"]


def test_churn_sample_on_local_target(sample_copy: Project) -> None:
    """The README's first job: the Workbench churn sample, unmodified, on the local target."""
    res = sample_copy.cli(
        "submit", "-c", "local", "CATelcoCustomerChurnModelingWithoutDprep.py", timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert "Naive Bayes Accuracy" in res.stdout and "DTree Accuracy" in res.stdout
    shown = json.loads(sample_copy.cli("runs", "last", "-o", "json", check=True).stdout)
    assert set(shown["metrics"]) == {"Naive Bayes Accuracy", "DTree Accuracy"}
    assert all(0.5 < v <= 1 for v in shown["metrics"].values())
    assert "model.pkl" in shown["outputs"]
