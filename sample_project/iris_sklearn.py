# Iris classification with scikit-learn, as in Workbench's classic iris sample:
# logistic regression with the regularization rate taken from the first
# argument (default 0.01), the accuracy logged, the model saved to outputs/.
#
#     iris_sklearn.py [REG_RATE]      (or --rate REG_RATE, as a sweep passes it)
#
# A sweep over the rate (the best run first):
#     labdeck sweep start -c local iris_sklearn.py --name iris \
#         --grid 'rate=0.001,0.003,0.01,0.03,0.1,0.3,1,3,10,30,100,300'
#     labdeck sweep show SWEEP --sort Accuracy

import argparse
import os
import pickle
import sys

import numpy as np
from azureml.logging import get_azureml_logger
from sklearn.datasets import load_iris  # the data set ships with scikit-learn: no download
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def main(argv):
    parser = argparse.ArgumentParser(description="Iris logistic regression")
    parser.add_argument("reg", nargs="?", type=float, default=None, help="regularization rate")
    parser.add_argument("--rate", type=float, default=None, help="regularization rate")
    args = parser.parse_args(argv[1:])
    reg = args.rate if args.rate is not None else (args.reg if args.reg is not None else 0.01)
    run_logger = get_azureml_logger()

    iris = load_iris()
    # Workbench's sample added random noise columns so that the rate matters.
    rng = np.random.default_rng(42)
    noise = rng.normal(size=(iris.data.shape[0], 40))
    features = np.hstack([iris.data, noise])
    x_train, x_test, y_train, y_test = train_test_split(
        features, iris.target, test_size=0.35, random_state=0)

    print(f"Regularization rate is {reg}")
    run_logger.log("Regularization Rate", reg)
    model = LogisticRegression(C=1.0 / reg, max_iter=2000).fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    print(f"Accuracy is {accuracy:.4f}")
    run_logger.log("Accuracy", accuracy)

    os.makedirs("outputs", exist_ok=True)
    with open(os.path.join("outputs", "model.pkl"), "wb") as out:
        pickle.dump(model, out)
    print("Model saved to outputs/model.pkl")


if __name__ == "__main__":
    main(sys.argv)
