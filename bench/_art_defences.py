"""Run ART's poisoning defences on cases written by data_screen.py (bench/.venv-art only).

ART's SpectralSignatureDefense and ActivationDefence read a classifier's activations.
The classifier here is a scikit-learn MLP (one hidden layer of 64 ReLU units) trained on
the poisoned data, behind the few members ART's defences call (layer_names,
get_activations, predict, nb_classes): the same thing PyTorchClassifier exposes for a
torch MLP, without bringing torch into this environment.
Input: an .npz per case (x, y, fraction). Output: one JSON line per case on stdout.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import MinMaxScaler

warnings.filterwarnings("ignore")


class MlpActivations:
    """The members of an ART neural-network classifier that the poison defences use."""

    def __init__(self, x: np.ndarray, y: np.ndarray, classes: int) -> None:
        self.scaler = MinMaxScaler().fit(x)
        self.model = MLPClassifier((64,), max_iter=500, random_state=0)
        self.model.fit(self.scaler.transform(x), y)
        self.nb_classes = classes
        self.layer_names = ["hidden", "output"]

    def get_activations(self, x, layer=0, batch_size=128, framework=False):
        hidden = np.maximum(
            0, self.scaler.transform(x) @ self.model.coefs_[0] + self.model.intercepts_[0]
        )
        return hidden

    def predict(self, x, batch_size=128, **kwargs):
        out = np.zeros((len(x), self.nb_classes))
        out[:, self.model.classes_] = self.model.predict_proba(self.scaler.transform(x))
        return out


def main() -> None:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    for path in sys.argv[1:]:
        case = np.load(path)
        x, y, fraction = case["x"], case["y"].astype(int), float(case["fraction"])
        classes = int(y.max()) + 1
        onehot = np.eye(classes)[y]
        started = time.perf_counter()
        clf = MlpActivations(x, y, classes)
        fit = time.perf_counter() - started
        started = time.perf_counter()
        spectral = SpectralSignatureDefense(
            clf, x, onehot, batch_size=128, eps_multiplier=1.5, expected_pp_poison=fraction
        )
        _report, flags = spectral.detect_poison()
        spectral_rows = [i for i, clean in enumerate(flags) if clean == 0]
        spectral_s = time.perf_counter() - started + fit
        started = time.perf_counter()
        activation = ActivationDefence(clf, x, onehot)
        _, flags = activation.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
        activation_rows = [i for i, clean in enumerate(flags) if clean == 0]
        activation_s = time.perf_counter() - started + fit
        print(
            json.dumps(
                {
                    "case": path,
                    "spectral": spectral_rows,
                    "spectral_s": spectral_s,
                    "activation": activation_rows,
                    "activation_s": activation_s,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
