"""As real Workbench scripts were written: no os.makedirs('outputs'), the share folder joined
with '+', azureml.logging for metrics, a helper from the runconfig's PYTHONPATH."""
import os
import pickle

from azureml.logging import get_azureml_logger
from helpers import GREETING

run_logger = get_azureml_logger()
share = os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"]
with open(share + "seen.txt", "w") as fh:
    fh.write(GREETING)
with open("./outputs/model.pkl", "wb") as fh:
    pickle.dump({"coef": [1, 2, 3]}, fh)
run_logger.log("Accuracy", 0.91)
print("share=" + share)
print(GREETING)
