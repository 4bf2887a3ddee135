"""Cross-check of RESULTS.md's Bayes-floor section with learners from outside the project.

Fits generic learners (xgboost, scikit-learn) on the same eight held-out splits of the shared
Optikal file that `antibody train --seed S` makes, and prints the errors (and false
positives) each makes per split. Not part of the build or CI: an analysis aid.

    pip install numpy scikit-learn xgboost
    cargo run --release -p antibody-ml --example oracle -- --splits=/tmp/splits.txt
    python3 crates/antibody-ml/analysis/crosscheck.py /tmp/splits.txt

The 18 features are the `agent-behavior` set's (src/features/agent.rs), in its order.
"""

import csv
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import SplineTransformer, StandardScaler
from sklearn.svm import SVC

warnings.filterwarnings("ignore")
DATA = Path(__file__).resolve().parents[4] / "shared/data/agent-behavior/optikal_training_data.csv"


def features(r):
    a, e = float(r["api_calls_count"]), float(r["error_count"])
    f, n = float(r["file_operations_count"]), float(r["network_calls_count"])
    cpu, mem = float(r["cpu_usage_percent"]) / 100, float(r["memory_usage_mb"]) / 1024
    h, d = float(r["hour_of_day"]), float(r["day_of_week"])
    q, s, rt = float(r["query_diversity"]), float(r["success_rate"]), float(r["response_time_ms"])
    er, night = e / (a + 1), float(h <= 6)
    return [a, e, f, n, cpu, mem, cpu * mem, er, q, s, night, float(d >= 5),
            math.sin(2 * math.pi * h / 24), math.cos(2 * math.pi * h / 24), rt / 1000,
            math.log1p(rt), (a / 100 + n / 50 + f / 10) / 3,
            0.3 * (1 - q) + 0.3 * er + 0.2 * night + 0.2 * (1 - s)]


def boosted(depth=4, rounds=200, eta=0.1, **extra):
    params = dict(max_depth=depth, eta=eta, reg_lambda=5, subsample=0.7, colsample_bytree=0.5,
                  objective="binary:logistic", tree_method="hist", seed=0, **extra)

    def fit_predict(xtr, ytr, xte):
        return xgb.train(params, xgb.DMatrix(xtr, label=ytr), rounds).predict(xgb.DMatrix(xte))
    return fit_predict


def sklearn(make):
    return lambda xtr, ytr, xte: make().fit(xtr, ytr).predict_proba(xte)[:, 1]


def boosted_on_logistic(xtr, ytr, xte):
    scale = StandardScaler().fit(xtr)
    lr = LogisticRegression(C=10, max_iter=5000).fit(scale.transform(xtr), ytr)
    dtr, dte = xgb.DMatrix(xtr, label=ytr), xgb.DMatrix(xte)
    dtr.set_base_margin(lr.decision_function(scale.transform(xtr)))
    dte.set_base_margin(lr.decision_function(scale.transform(xte)))
    params = dict(max_depth=4, eta=0.1, reg_lambda=5, subsample=0.7, colsample_bytree=0.5,
                  objective="binary:logistic", tree_method="hist", seed=0)
    return xgb.train(params, dtr, 50).predict(dte)


# Monotone: more api calls, errors, file and network operations, less success = more suspect.
MONOTONE = "(1,1,1,1,0,0,0,0,0,-1,0,0,0,0,0,0,0,0)"
LEARNERS = {
    "boosted trees": boosted(),
    "boosted trees, monotone": boosted(monotone_constraints=MONOTONE),
    "boosted stumps": boosted(depth=1, rounds=500),
    "boosting on a logistic margin": boosted_on_logistic,
    "logistic regression": sklearn(lambda: make_pipeline(
        StandardScaler(), LogisticRegression(C=10, max_iter=5000))),
    "spline GAM": sklearn(lambda: make_pipeline(
        StandardScaler(), SplineTransformer(n_knots=8), LogisticRegression(C=1, max_iter=5000))),
    "MLP 32-16": sklearn(lambda: make_pipeline(
        StandardScaler(), MLPClassifier((32, 16), alpha=1e-3, max_iter=2000, random_state=0))),
    "RBF SVM": sklearn(lambda: make_pipeline(
        StandardScaler(), SVC(C=10, probability=True, random_state=0))),
}


def main():
    rows = list(csv.DictReader(DATA.open()))
    x = np.array([features(r) for r in rows])
    y = np.array([int(r["is_threat"]) for r in rows])
    splits = []
    for line in Path(sys.argv[1]).read_text().split("\n"):
        if line.strip():
            seed, lines = line.split()
            # Source lines count the header as line 1.
            test = np.array([int(v) - 2 for v in lines.split(",")])
            splits.append((seed, np.setdiff1d(np.arange(len(y)), test), test))
    print("learner".ljust(32), "sum", " ".join(f"{s:>7}" for s, _, _ in splits))
    for name, fit_predict in LEARNERS.items():
        cells, total = [], 0
        for _, train, test in splits:
            flagged = fit_predict(x[train], y[train], x[test]) >= 0.5
            errors = int((flagged != (y[test] == 1)).sum())
            fp = int((flagged & (y[test] == 0)).sum())
            total += errors
            cells.append(f"{errors:>3} / {fp}")
        print(name.ljust(32), f"{total:>3}", " ".join(f"{c:>7}" for c in cells))


if __name__ == "__main__":
    main()
