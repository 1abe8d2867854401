"""Reading what `keelson status` shows from the API server (the `kubernetes` client, the user's
kubeconfig). The only module of `keelson.status` that does I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from keelson.api.v1alpha1 import GROUP, KIND, PLURAL, VERSION
from keelson.render.labels import PLATFORM_LABEL


class PlatformNotFound(Exception):
    pass


class NoCluster(Exception):
    pass


@dataclass(frozen=True)
class PlatformObjects:
    platform: dict[str, Any]
    deployments: list[dict[str, Any]]
    hpas: list[dict[str, Any]]
    events: list[dict[str, Any]]


class Reader:
    def __init__(self) -> None:
        try:
            config.load_kube_config()
        except config.ConfigException:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                raise NoCluster('no kubeconfig (set KUBECONFIG; locally: eval "$(keelson dev env)")') from None
        self.api = client.ApiClient()

    def default_namespace(self) -> str:
        _, current = config.list_kube_config_contexts()
        return str((current or {}).get("context", {}).get("namespace") or "default")

    def _plain(self, objects: Any) -> list[dict[str, Any]]:
        return list(self.api.sanitize_for_serialization(objects.items))

    def platforms(self, namespace: str | None) -> list[dict[str, Any]]:
        api = client.CustomObjectsApi(self.api)
        if namespace:
            listed = api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        else:
            listed = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        items = cast(list[dict[str, Any]], cast(dict[str, Any], listed)["items"])
        return sorted(items, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))

    def platform(self, name: str, namespace: str) -> PlatformObjects:
        try:
            found = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
            obj = cast(dict[str, Any], found)
        except ApiException as exc:
            if exc.status == 404:
                raise PlatformNotFound(f"MicroservicePlatform {name!r} not found in namespace {namespace!r}") from None
            raise
        selector = f"{PLATFORM_LABEL}={name}"
        deployments = client.AppsV1Api(self.api).list_namespaced_deployment(namespace, label_selector=selector)
        hpas = client.AutoscalingV2Api(self.api).list_namespaced_horizontal_pod_autoscaler(
            namespace, label_selector=selector
        )
        events = client.CoreV1Api(self.api).list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind={KIND},involvedObject.name={name}"
        )
        return PlatformObjects(obj, self._plain(deployments), self._plain(hpas), self._plain(events))
