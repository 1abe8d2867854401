from keelson.controller.drift import HASH_ANNOTATION, differences, drifted_fields, is_subset, needs_apply, with_hash

DESIRED = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "orders", "namespace": "ns", "labels": {"a": "b"}},
    "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"a": "b"}},
}


def _live(**changes):
    obj = with_hash(DESIRED)
    live = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            **obj["metadata"],
            "uid": "u1",
            "resourceVersion": "7",
            "annotations": {**obj["metadata"]["annotations"], "someone.else/note": "x"},
        },
        "spec": {
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"a": "b"},
            "clusterIP": "10.0.0.7",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }
    live["spec"].update(changes)
    return live


def test_in_sync_object_needs_no_write() -> None:
    assert not needs_apply(with_hash(DESIRED), _live())


def test_missing_object_needs_a_write() -> None:
    assert needs_apply(with_hash(DESIRED), None)


def test_edited_field_needs_a_write() -> None:
    assert needs_apply(with_hash(DESIRED), _live(selector={"a": "c"}))


def test_removed_field_needs_a_write() -> None:
    live = _live()
    del live["metadata"]["labels"]["a"]
    assert needs_apply(with_hash(DESIRED), live)


def test_field_we_stopped_rendering_needs_a_write() -> None:
    live = _live()
    live["metadata"]["annotations"][HASH_ANNOTATION] = "old"
    assert needs_apply(with_hash(DESIRED), live)


def test_quantities_compare_by_value() -> None:
    assert is_subset({"cpu": "0.5", "memory": "1Gi"}, {"cpu": "500m", "memory": "1024Mi"})
    assert not is_subset({"cpu": "0.5"}, {"cpu": "600m"})


def test_scalar_lists_are_atomic() -> None:
    assert not is_subset({"args": ["a"]}, {"args": ["a", "b"]})
    assert is_subset({"args": ["a", "b"]}, {"args": ["a", "b"]})


def test_object_lists_allow_foreign_entries() -> None:
    assert is_subset(
        {"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "X", "value": "0"}, {"name": "A", "value": "1"}]}
    )
    assert not is_subset({"env": [{"name": "A", "value": "1"}]}, {"env": [{"name": "A", "value": "2"}]})


def test_booleans_are_not_quantities() -> None:
    assert not is_subset({"x": False}, {"x": 0})


def test_empty_values_match_what_the_server_omits() -> None:
    # A NetworkPolicy of a service nobody calls: `ingress: []` is stored as no field at all.
    assert is_subset(
        {"spec": {"ingress": [], "egress": [{"ports": [{"port": 53}]}]}},
        {"spec": {"egress": [{"ports": [{"port": 53}]}]}},
    )
    # env entry with an empty value: the server drops `value: ""`.
    assert is_subset({"env": [{"name": "A", "value": ""}]}, {"env": [{"name": "A"}]})
    assert is_subset({"a": None, "b": {}, "c": {"d": []}}, {})


def test_empty_desired_still_sees_someone_elses_content() -> None:
    # We want no ingress rules; someone added one: that is drift, not an omitted empty list.
    assert not is_subset({"ingress": []}, {"ingress": [{"from": [{"podSelector": {}}]}]})
    assert not is_subset({"value": ""}, {"value": "x"})


def test_quantities_compare_at_the_servers_precision() -> None:
    assert is_subset({"memory": "512M"}, {"memory": "512M"})
    assert is_subset({"memory": "1024Mi"}, {"memory": "1Gi"})
    assert is_subset({"cpu": 0.5}, {"cpu": "500m"})
    # Below a milli unit the server rounds a container's resources up (seen on kube-apiserver 1.36).
    assert is_subset({"cpu": "100n"}, {"cpu": "1m"})
    assert is_subset({"cpu": "0.0001"}, {"cpu": "1m"})
    assert not is_subset({"cpu": "1m"}, {"cpu": "2m"})


def test_differences_name_the_fields() -> None:
    desired = {
        "spec": {"replicas": 2, "template": {"containers": [{"name": "app", "env": [{"name": "A", "value": "1"}]}]}}
    }
    live = {
        "spec": {"replicas": 3, "template": {"containers": [{"name": "app", "env": [{"name": "A", "value": "2"}]}]}}
    }
    assert list(differences(desired, live)) == [
        "spec.replicas",
        "spec.template.containers[0].env[0].value",
    ]
    assert drifted_fields(
        with_hash({"metadata": {"name": "x"}, "spec": {"a": 1}}), {"metadata": {"name": "x"}, "spec": {"a": 1}}
    ) == [f"metadata.annotations.{HASH_ANNOTATION}"]
