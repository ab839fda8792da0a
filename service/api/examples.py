"""The examples of the OpenAPI page, written once: every one is a working request against the demo model of
``make run`` (``breast-cancer``: the 30 features of ``examples/breast_cancer.csv``, labels ``benign`` /
``malignant``), or against the version the ``POST /train`` example adds to it. Path and query examples name the same
model and versions as the bodies. ``tests/e2e/test_openapi_examples.py`` sends each one to a real server.

The rows are rows of ``examples/breast_cancer.csv`` (``tests/unit/test_examples.py`` checks that they still are).
"""

from __future__ import annotations

from typing import Any

#: The model ``logreg serve --demo`` (``make run``) trains into an empty registry.
DEMO_MODEL = "breast-cancer"
#: Its label column in ``examples/breast_cancer.csv``, and the CSV as a ``data.uri`` under ``make run``'s
#: ``LOGREG_DATA_ROOTS`` (``examples/``), relative to the directory the server runs in (the repository's).
DEMO_TARGET = "diagnosis"
DEMO_CSV_URI = "examples/breast_cancer.csv"
#: The version the demo trains; the ``/train`` example adds version 2 (the one the delete example removes).
DEMO_VERSION = 1
TRAINED_VERSION = 2

FEATURE_NAMES = [
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry", "mean_fractal_dimension",
    "radius_error", "texture_error", "perimeter_error", "area_error", "smoothness_error",
    "compactness_error", "concavity_error", "concave_points_error", "symmetry_error", "fractal_dimension_error",
    "worst_radius", "worst_texture", "worst_perimeter", "worst_area", "worst_smoothness",
    "worst_compactness", "worst_concavity", "worst_concave_points", "worst_symmetry", "worst_fractal_dimension",
]

#: Data rows 1 (malignant) and 20 (benign) of the CSV, in the order of FEATURE_NAMES.
MALIGNANT_ROW = [
    17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871,
    1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193,
    25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
]
BENIGN_ROW = [
    13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766,
    0.2699, 0.7886, 2.058, 23.56, 0.008462, 0.0146, 0.02387, 0.01315, 0.0198, 0.0023,
    15.11, 19.26, 99.7, 711.2, 0.144, 0.1773, 0.239, 0.1288, 0.2977, 0.07259,
]
ROWS = [MALIGNANT_ROW, BENIGN_ROW]
LABELS = ["malignant", "benign"]

#: Eight rows of the CSV (its first four malignant and first four benign ones, alternating) and their labels:
#: the ``/train`` example's, with a stratified validation split of two rows.
TRAIN_ROWS = [
    [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871,
     1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193,
     25.38, 17.33, 184.6, 2019.0, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189],
    [13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766,
     0.2699, 0.7886, 2.058, 23.56, 0.008462, 0.0146, 0.02387, 0.01315, 0.0198, 0.0023,
     15.11, 19.26, 99.7, 711.2, 0.144, 0.1773, 0.239, 0.1288, 0.2977, 0.07259],
    [20.57, 17.77, 132.9, 1326.0, 0.08474, 0.07864, 0.0869, 0.07017, 0.1812, 0.05667,
     0.5435, 0.7339, 3.398, 74.08, 0.005225, 0.01308, 0.0186, 0.0134, 0.01389, 0.003532,
     24.99, 23.41, 158.8, 1956.0, 0.1238, 0.1866, 0.2416, 0.186, 0.275, 0.08902],
    [13.08, 15.71, 85.63, 520.0, 0.1075, 0.127, 0.04568, 0.0311, 0.1967, 0.06811,
     0.1852, 0.7477, 1.383, 14.67, 0.004097, 0.01898, 0.01698, 0.00649, 0.01678, 0.002425,
     14.5, 20.49, 96.09, 630.5, 0.1312, 0.2776, 0.189, 0.07283, 0.3184, 0.08183],
    [19.69, 21.25, 130.0, 1203.0, 0.1096, 0.1599, 0.1974, 0.1279, 0.2069, 0.05999,
     0.7456, 0.7869, 4.585, 94.03, 0.00615, 0.04006, 0.03832, 0.02058, 0.0225, 0.004571,
     23.57, 25.53, 152.5, 1709.0, 0.1444, 0.4245, 0.4504, 0.243, 0.3613, 0.08758],
    [9.504, 12.44, 60.34, 273.9, 0.1024, 0.06492, 0.02956, 0.02076, 0.1815, 0.06905,
     0.2773, 0.9768, 1.909, 15.7, 0.009606, 0.01432, 0.01985, 0.01421, 0.02027, 0.002968,
     10.23, 15.66, 65.13, 314.9, 0.1324, 0.1148, 0.08867, 0.06227, 0.245, 0.07773],
    [11.42, 20.38, 77.58, 386.1, 0.1425, 0.2839, 0.2414, 0.1052, 0.2597, 0.09744,
     0.4956, 1.156, 3.445, 27.23, 0.00911, 0.07458, 0.05661, 0.01867, 0.05963, 0.009208,
     14.91, 26.5, 98.87, 567.7, 0.2098, 0.8663, 0.6869, 0.2575, 0.6638, 0.173],
    [13.03, 18.42, 82.61, 523.8, 0.08983, 0.03766, 0.02562, 0.02923, 0.1467, 0.05863,
     0.1839, 2.342, 1.17, 14.16, 0.004352, 0.004899, 0.01343, 0.01164, 0.02671, 0.001777,
     13.3, 22.81, 84.46, 545.9, 0.09701, 0.04619, 0.04833, 0.05013, 0.1987, 0.06169],
]
TRAIN_LABELS = ["malignant", "benign", "malignant", "benign", "malignant", "benign", "malignant", "benign"]


def record(row: list[float]) -> dict[str, float]:
    """A row as ``{feature: value}``."""
    return dict(zip(FEATURE_NAMES, row, strict=True))


def _csv(rows: list[list[float]]) -> str:
    return "\n".join([",".join(FEATURE_NAMES), *(",".join(map(str, row)) for row in rows)]) + "\n"


def named(**examples: tuple[str, Any]) -> dict[str, dict[str, Any]]:
    """OpenAPI named examples (a media type's ``examples``) from ``name=(summary, value)``."""
    return {name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()}


#: The ``text/csv`` body of ``/predict_proba``, ``/predict`` and ``/invocations`` (with ``?model=``).
CSV_ROWS = _csv(ROWS)

TRAIN = named(
    rows=("Rows and labels: a new version of the demo model from eight of its rows",
          {"model": DEMO_MODEL, "feature_names": FEATURE_NAMES, "features": TRAIN_ROWS, "labels": TRAIN_LABELS,
           "validation_fraction": 0.25, "description": "eight rows of examples/breast_cancer.csv",
           "tags": {"source": "openapi example"}}),
    table=("A table the service reads itself: a path under LOGREG_DATA_ROOTS (make run: examples/)",
           {"model": DEMO_MODEL, "data": {"uri": DEMO_CSV_URI, "target": DEMO_TARGET},
            "params": {"solver": "newton"}, "description": "retrained from examples/breast_cancer.csv"}),
)
PREDICT = named(
    rows=("Rows in the model's feature order (a malignant and a benign one)",
          {"model": DEMO_MODEL, "features": ROWS}),
    records=("Records by feature name, of a version",
             {"model": DEMO_MODEL, "version": DEMO_VERSION, "records": [record(BENIGN_ROW)]}),
)
METRICS = named(
    rows=("Labelled rows", {"model": DEMO_MODEL, "features": ROWS, "labels": LABELS}),
    threshold=("Labelled records, of a version, at a decision threshold",
               {"model": DEMO_MODEL, "version": DEMO_VERSION, "records": [record(r) for r in ROWS], "labels": LABELS,
                "threshold": 0.3}),
)
THRESHOLD_OPTIMIZE = named(
    f1=("Maximum F1 on the validation split stored at training", {"objective": "f1"}),
    cost=("Minimum expected cost: a missed malignant case costs five false alarms",
          {"objective": "cost", "cost": {"fp": 1, "fn": 5}}),
    min_recall=("Best precision at recall >= 0.95, stored as the version's threshold",
                {"objective": "min_recall", "target": 0.95, "store": True}),
    posted=("Maximum TPR - FPR on posted labelled rows",
            {"objective": "youden", "data": {"features": ROWS, "labels": LABELS}}),
)
ALIAS = named(production=("Point the alias at the demo's version", {"version": DEMO_VERSION}))
# (No example with `"threshold": null`: FastAPI leaves nulls out of the OpenAPI document, so it would read `{}`.)
THRESHOLD = named(set=("A decision threshold below 0.5: more rows predicted malignant", {"threshold": 0.35}))
MLFLOW = named(
    dataframe_split=("pandas `split` orient", {"dataframe_split": {"columns": FEATURE_NAMES, "data": ROWS}}),
    dataframe_records=("pandas `records` orient", {"dataframe_records": [record(r) for r in ROWS]}),
    instances=("Rows in the model's feature order", {"instances": ROWS}),
    inputs=("Columns by feature name",
            {"inputs": {name: [row[j] for row in ROWS] for j, name in enumerate(FEATURE_NAMES)}}),
)
V2_INFER = named(
    matrix=("One [rows, features] tensor",
            {"inputs": [{"name": "input-0", "shape": [len(ROWS), len(FEATURE_NAMES)], "datatype": "FP64",
                         "data": ROWS}]}),
    per_feature=("One input per feature, probabilities only",
                 {"id": "42",
                  "inputs": [{"name": name, "shape": [1], "datatype": "FP64", "data": [BENIGN_ROW[j]]}
                             for j, name in enumerate(FEATURE_NAMES)],
                  "outputs": [{"name": "predict_proba"}]}),
)
