import pytest

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.effective import effective_services
from keelson.sizing import size_for


@pytest.mark.parametrize(
    ("users", "min_r", "max_r", "partitions"),
    [(1_000, 2, 2, 3), (1_000_000, 3, 7, 7), (10_000_000, 24, 70, 70), (1_000_000_000, 100, 100, 100)],
)
def test_sizing_table(users: int, min_r: int, max_r: int, partitions: int) -> None:
    result = size_for(users)
    assert (result.min_replicas, result.max_replicas, result.partitions) == (min_r, max_r, partitions)
    assert result.peak_rps == pytest.approx(result.average_rps * 3, abs=0.2)


def test_precedence_service_over_defaults_over_sizing() -> None:
    spec = MicroservicePlatformSpec.model_validate(
        {
            "domain": "shop",
            "dailyUsers": 1_000_000,
            "defaults": {"autoscaling": {"maxReplicas": 12}, "resilience": {"timeoutSeconds": 2}},
            "services": [
                {"name": "a", "image": "x"},
                {
                    "name": "b",
                    "image": "x",
                    "autoscaling": {"minReplicas": 4},
                    "resilience": {"retry": {"maxRetries": 4}},
                },
            ],
        }
    )
    a, b = effective_services(spec)
    assert (a.autoscaling.min_replicas, a.autoscaling.max_replicas) == (3, 12)  # sizing min, defaults max
    assert (b.autoscaling.min_replicas, b.autoscaling.max_replicas) == (4, 12)
    assert a.resilience.timeout_seconds == 2 and a.resilience.max_retries == 3
    assert b.resilience.max_retries == 4 and b.resilience.backoff_seconds == (1, 2, 4, 8)
