"""Keelson: a Kubernetes operator that provisions a microservice platform from one resource."""

__version__ = "0.1.0"
