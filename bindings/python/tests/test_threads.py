"""Thread settings (C ABI 1.1): round trips, and bad counts raise and change nothing."""
import pytest

import descent
from descent import DescentError

OUT_OF_RANGE = 6
INVALID_ARGUMENT = 2


@pytest.fixture
def restore_default():
    yield
    descent.set_num_threads(0)


def test_process_wide_round_trip_and_bad_counts(restore_default):
    assert descent.get_num_threads() >= 1
    descent.set_num_threads(3)
    assert descent.get_num_threads() == 3

    with pytest.raises(DescentError) as e:
        descent.set_num_threads(1 << 40)
    assert e.value.status == OUT_OF_RANGE and "at most" in e.value.message
    with pytest.raises(DescentError) as e:
        descent.set_num_threads(-1)
    assert e.value.status == INVALID_ARGUMENT
    with pytest.raises(DescentError) as e:
        descent.set_num_threads(1 << 70)
    assert e.value.status == OUT_OF_RANGE
    with pytest.raises(TypeError):
        descent.set_num_threads(2.5)
    assert descent.get_num_threads() == 3, "a refused count changes nothing"

    descent.set_num_threads(0)
    assert descent.get_num_threads() >= 1


def test_optimizer_round_trip_and_bad_counts():
    opt = descent.Adam(learning_rate=1e-3)
    assert opt.num_threads == 0, "default: follow the process-wide count"
    opt.num_threads = 2
    assert opt.num_threads == 2

    with pytest.raises(DescentError) as e:
        opt.num_threads = 1 << 40
    assert e.value.status == OUT_OF_RANGE and "at most" in e.value.message
    with pytest.raises(DescentError) as e:
        opt.num_threads = -2
    assert e.value.status == INVALID_ARGUMENT
    with pytest.raises(TypeError):
        opt.num_threads = "4"
    assert opt.num_threads == 2, "a refused count changes nothing"
