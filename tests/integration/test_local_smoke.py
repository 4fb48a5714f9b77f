from tests.conftest import Project


def test_submit_hello_records_metrics_and_outputs(project: Project) -> None:
    project.write("hello.py", """
        from azureml.logging import get_azureml_logger
        import os
        log = get_azureml_logger()
        print("hi")
        log.log("acc", 0.5)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/x.txt", "w").write("x")
    """)
    res = project.cli("submit", "-c", "local", "hello.py")
    assert res.returncode == 0, res.stderr
    assert "hi" in res.stdout
    import json
    shown = json.loads(project.cli("runs", "last", "-o", "json", check=True).stdout)
    assert shown["status"] == "completed"
    assert shown["metrics"] == {"acc": 0.5}
    assert shown["outputs"] == ["x.txt"]
