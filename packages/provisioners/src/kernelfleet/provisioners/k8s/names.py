"""Kubernetes names made from user input: the checks live in the shared ``spec_values`` (request checks use them
whatever the engine); this module keeps the names the Kubernetes engine and its users import from here."""

from kernelfleet.provisioners.spec_values import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    HASH_CHARS,
    LABEL_NAME,
    LABEL_VALUE,
    MAX_LABEL,
    MAX_SUBDOMAIN,
    K8sNameError,
    check_dns_label,
    check_dns_subdomain,
    check_label,
    dns_label,
)

__all__ = [
    "DNS_LABEL",
    "DNS_SUBDOMAIN",
    "HASH_CHARS",
    "LABEL_NAME",
    "LABEL_VALUE",
    "MAX_LABEL",
    "MAX_SUBDOMAIN",
    "K8sNameError",
    "check_dns_label",
    "check_dns_subdomain",
    "check_label",
    "dns_label",
]
