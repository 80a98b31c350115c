"""Ingress controllers (Traefik in front of the Linkerd dashboard)."""
