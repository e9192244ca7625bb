"""Integration tests against a real kube-apiserver + etcd (see docs/testing.md)."""
