"""The JSON the lab's Kubernetes API answers with: statuses, watch lines, bookmarks, continue tokens.

Shaped as kube-apiserver 1.20 sends them (toolforgectl/lab/kubeapi.py serves them; kubehttp.py
routes the requests).
"""

from __future__ import annotations

import base64
import json
from typing import Any

TOKEN = "lab-kube-token"  # the bearer token the lab's kubeconfig carries and the API requires


def selected(obj: dict[str, Any], query: dict[str, str]) -> bool:
    """Whether `obj`'s labels satisfy the equality/existence terms of labelSelector."""
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, (query.get("labelSelector") or "").split(",")):
        key, eq, value = term.partition("=")
        if (key not in labels) if not eq else (labels.get(key) != value.lstrip("=")):
            return False
    return True


def status_body(code: int, reason: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "code": code, "reason": reason}


def gone() -> dict[str, Any]:
    return {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "The resourceVersion for the provided watch is too old.",
            "reason": "Expired",
            "code": 410,
        },
    }


def bookmark(version: int) -> dict[str, Any]:
    return {"kind": "Service", "apiVersion": "v1", "metadata": {"resourceVersion": str(version)}}


def line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def encode_continue(start: int, version: int) -> str:
    return base64.urlsafe_b64encode(f"{version}:{start}".encode()).decode()


def decode_continue(token: str | None, version: int) -> tuple[int, int]:
    """(offset, version of the first page) from a continue token; (0, now) without one."""
    if not token:
        return 0, version
    snapshot, _, start = base64.urlsafe_b64decode(token).decode().partition(":")
    return int(start), int(snapshot)
