"""Parameter counts and GMACs equal the reference table (tests/reference/model_table.csv)."""
import pytest

from helpers import meta_model, reference_rows
from modernconv.analysis import count_macs, count_params

ROWS = reference_rows()


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['name']}-{r['form']}" for r in ROWS])
def test_params_and_gmacs_match_the_reference(row):
    kwargs = {"deploy": True} if row["form"] == "deploy" else {}
    model = meta_model(row["name"], **kwargs)
    assert count_params(model)[0] == int(row["params"])
    gmacs = count_macs(model, (3, 224, 224)) / 1e9
    assert gmacs == pytest.approx(float(row["gmacs_224"]), rel=0.01)


def convmixer_params(h: int, d: int, k: int, p: int, n: int) -> int:
    """ConvMixer-h/d (kernel k, patch p, n classes): h*(d*(k*k + h + 6) + 3*p*p + n + 3) + n parameters."""
    return h * (d * (k * k + h + 6) + 3 * p * p + n + 3) + n


def test_convmixer_parameter_formula():
    assert count_params(meta_model("convmixer_256_8"))[0] == convmixer_params(256, 8, 5, 2, 10)
