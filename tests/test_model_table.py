"""Parameter counts and GMACs equal shared/reference/model_table.csv."""
import csv
from pathlib import Path

import pytest

from helpers import meta_model
from modernconv.analysis import count_macs, count_params

TABLE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "model_table.csv"
ROWS = list(csv.DictReader(TABLE.open()))


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['name']}-{r['form']}" for r in ROWS])
def test_params_and_gmacs_match_the_reference(row):
    kwargs = {"deploy": True} if row["form"] == "deploy" else {}
    model = meta_model(row["name"], **kwargs)
    assert count_params(model)[0] == int(row["params"])
    gmacs = count_macs(model, (3, 224, 224)) / 1e9
    assert gmacs == pytest.approx(float(row["gmacs_224"]), rel=0.01)


def test_convmixer_parameter_formula():
    h, d, k, p, n = 256, 8, 5, 2, 10  # h*(d*(k*k + h + 6) + 3*p*p + n + 3) + n
    assert count_params(meta_model("convmixer_256_8"))[0] == h * (d * (k * k + h + 6) + 3 * p * p + n + 3) + n
