# Telco customer churn: the Azure ML Workbench sample, ported to current
# pandas / scikit-learn.  Trains a Naive Bayes and a decision tree model on
# data/CATelcoCustomerChurnTrainingSample.csv and logs their accuracies.
# The decision tree is saved to outputs/model.pkl.
#
# `azureml.logging` is provided by labdeck when it runs the script.

import os
import pickle
import time

import pandas as pd
from azureml.logging import get_azureml_logger
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

DATA_FILE = os.path.join("data", "CATelcoCustomerChurnTrainingSample.csv")

start = time.perf_counter()

# initialize the logger
run_logger = get_azureml_logger()


if not os.path.exists(DATA_FILE):
    # The data is synthetic and not part of the project snapshot: make it.
    from generate_churn_data import generate

    print("Generating", DATA_FILE)
    generate(DATA_FILE)

df = pd.read_csv(DATA_FILE)
df = df.fillna(0)
df = df.drop_duplicates()
df = df.drop(columns=["year", "month"])

# One-hot encode the text columns (gender, state, education, ...).
text_columns = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
df = pd.get_dummies(df, columns=text_columns, dtype=int)
print("Data shape after encoding:", df.shape)

random_seed = 42
train, test = train_test_split(df, random_state=random_seed, test_size=0.3)

target = "churn"
X = train.drop(columns=[target])
y = train[target]
X_test = test.drop(columns=[target])
y_test = test[target]

model = GaussianNB()
model.fit(X, y)
Y_test = model.predict(X_test)
nb_accuracy = float((Y_test == y_test).mean())
print("Naive Bayes Accuracy is", round(nb_accuracy, 4))
run_logger.log("Naive Bayes Accuracy", nb_accuracy)

dt = DecisionTreeClassifier(min_samples_split=20, random_state=99)
dt.fit(X, y)
Y_test = dt.predict(X_test)
dt_accuracy = float((Y_test == y_test).mean())
print("DTree Accuracy is", round(dt_accuracy, 4))
run_logger.log("DTree Accuracy", dt_accuracy)

with open(os.path.join("outputs", "model.pkl"), "wb") as f:
    pickle.dump(dt, f)

print("Saved outputs/model.pkl; finished in %.2fs" % (time.perf_counter() - start))
