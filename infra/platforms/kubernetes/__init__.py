"""Kubernetes back end."""
