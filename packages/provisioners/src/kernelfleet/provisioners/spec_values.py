"""Values a request or a kernelspec puts into an engine object's spec, checked as Kubernetes checks them: DNS
labels and subdomains, label keys and values, resource quantities.

Shared by every engine (``request_env`` checks a request's ``KERNEL_NAMESPACE`` and ``KERNEL_CPUS`` whatever the
engine, ``server_identity`` makes a label-safe server id), so it lives at the top and imports nothing of an engine;
``k8s.names`` and ``k8s.pod`` re-export what the Kubernetes engine used to find there.

Gateway Provisioners lowercased and dashed the pod name but never shortened it, so a long user name made the pod,
its container and its namespace invalid. A label here is at most 63 characters; when the readable form has to be
cut, a hash of the whole input is appended, so two long names that share a prefix still differ.
"""

from __future__ import annotations

import hashlib
import re

# A Kubernetes quantity without sign or exponent games: "2", "0.5", "500m", "4Gi", "1e3" is refused on purpose.
QUANTITY = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{1,6})?|\.[0-9]{1,6})(?:m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
MAX_LABEL = 63
MAX_SUBDOMAIN = 253
HASH_CHARS = 8
_UNSAFE = re.compile(r"[^a-z0-9]+")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Label values: empty, or up to 63 of [A-Za-z0-9_.-] starting and ending alphanumeric.
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
# Label keys: an optional DNS-subdomain prefix and "/", then a name like a label value (non-empty).
LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


class K8sNameError(ValueError):
    """A name a request supplied that Kubernetes would refuse (or that would mean something else)."""


class PodSpecError(ValueError):
    """A setting or a rendered manifest that the operator's policy or Kubernetes itself would refuse."""


def parse_quantity(kernel_id: str, name: str, value: object) -> str:
    """A cpu/memory/GPU amount as Kubernetes writes it; anything else (YAML, signs, spaces) is refused."""
    text = str(value) if isinstance(value, int | float | str) and not isinstance(value, bool) else None
    if text is None or not QUANTITY.fullmatch(text):
        raise PodSpecError(
            f"Kernel {kernel_id}: {name}={str(value)[:40]!r} is not a resource quantity (e.g. 2, 0.5, 500m, 4Gi)"
        )
    return text


def dns_label(text: str, *, max_length: int = MAX_LABEL, fallback: str = "kernel") -> str:
    """``text`` as a DNS-1123 label: lowercase alphanumerics and dashes, at most ``max_length`` characters.

    Runs of other characters become one dash. When the result has to be shortened, its last characters are a
    hash of the original text, so the mapping stays deterministic (a restart finds the same name) and distinct.
    """
    slug = _UNSAFE.sub("-", text.lower()).strip("-") or fallback
    if len(slug) <= max_length:
        return slug
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]
    head = slug[: max_length - HASH_CHARS - 1].rstrip("-")
    return f"{head}-{digest}"


def check_dns_label(kernel_id: str, what: str, value: str) -> str:
    """``value`` unchanged if it is a DNS-1123 label (namespace names, service names), otherwise an error."""
    if not DNS_LABEL.fullmatch(value):
        raise K8sNameError(
            f"Kernel {kernel_id}: {what}={value[:80]!r} is not a valid Kubernetes name: use at most {MAX_LABEL} "
            "lowercase letters, digits and '-', starting and ending with a letter or digit"
        )
    return value


def check_dns_subdomain(kernel_id: str, what: str, value: str) -> str:
    """``value`` unchanged if it is a DNS-1123 subdomain (service accounts, secrets), otherwise an error."""
    if len(value) > MAX_SUBDOMAIN or not DNS_SUBDOMAIN.fullmatch(value) or any(
        len(part) > MAX_LABEL for part in value.split(".")
    ):
        raise K8sNameError(
            f"Kernel {kernel_id}: {what}={value[:80]!r} is not a valid Kubernetes name: use lowercase letters, "
            "digits, '-' and '.', starting and ending with a letter or digit"
        )
    return value


def check_label(kernel_id: str, key: str, value: str) -> None:
    """Refuse a label the API server would reject; labels from a kernelspec are checked before any launch."""
    prefix, _, name = key.rpartition("/")
    if (prefix and not DNS_SUBDOMAIN.fullmatch(prefix)) or not LABEL_NAME.fullmatch(name):
        raise K8sNameError(f"Kernel {kernel_id}: {key[:80]!r} is not a valid label key")
    if not LABEL_VALUE.fullmatch(value):
        raise K8sNameError(f"Kernel {kernel_id}: label {key}={value[:80]!r} has an invalid value")
