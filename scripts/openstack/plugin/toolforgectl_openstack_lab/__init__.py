"""Glue for running OpenStack's APIs on loopback without agents (the slow test tier's cloud)."""
