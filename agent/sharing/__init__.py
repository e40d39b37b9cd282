"""Sharing (flow-through provisioning) between the hub and its elements."""
