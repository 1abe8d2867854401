"""The embedded local Kubernetes stack behind ``keelson dev``.

A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with
kwok's fake nodes, built from the Go module proxy and run as plain processes under a state
directory: no Docker, no internet beyond package registries.
"""
