import pytest
from pydantic import ValidationError

from keelson.api.v1alpha1 import MicroservicePlatform, topic_name
from tests.cases.invalid_platforms import INVALID, example, invalid_platform


def test_example_is_valid() -> None:
    platform = MicroservicePlatform.from_object(example())
    assert platform.spec.domain == "ecommerce"
    assert [s.name for s in platform.spec.services] == ["gateway", "users", "orders", "payments", "notifications"]


@pytest.mark.parametrize(("case", "mutation", "fragment"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_platforms_are_refused(case: str, mutation, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        MicroservicePlatform.from_object(invalid_platform(mutation))
    assert fragment.lower() in str(info.value).lower()


def test_topic_names() -> None:
    assert topic_name("ecommerce", "order.created") == "ecommerce.order.created"
    assert topic_name("ecommerce", "billing.invoice.sent") == "billing.invoice.sent"


def test_unknown_fields_are_refused() -> None:
    doc = example()
    doc["spec"]["services"][0]["replica"] = 3
    with pytest.raises(ValidationError, match="replica"):
        MicroservicePlatform.from_object(doc)
