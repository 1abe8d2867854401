from typing import Any

from keelson.api.v1alpha1 import MicroservicePlatform
from keelson.render import RenderContext, render_platform
from tests.cases.invalid_platforms import example


def context(mutate: Any = None, namespace: str = "shop-ns") -> RenderContext:
    doc = example()
    if mutate:
        mutate(doc["spec"])
    platform = MicroservicePlatform.from_object(doc)
    return RenderContext(name="shop", namespace=namespace, spec=platform.spec, reference_image="img:1")


def objects(ctx: RenderContext) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render_platform(ctx)}
