"""The RBAC authorizer: every request is allowed only by a rule of a Role or ClusterRole bound to its user (or one of
its groups), evaluated as Kubernetes' ``rbac`` authorizer does, and RBAC objects can grant only what their creator
holds (the ``bind`` / ``escalate`` checks of the rbac registry).

``KubeLite`` (server.py) calls ``check`` for every request once it knows the user, ``check_grant`` before it stores a
Role, ClusterRole, RoleBinding or ClusterRoleBinding a user sends, and ``access_review`` for
SelfSubjectAccessReview / SelfSubjectRulesReview (``kubectl auth can-i``). The objects are read from the store at
each decision, so a binding applied or deleted takes effect on the next request, as with the real informers.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .authn import MASTERS, UserInfo
from .errors import ApiError, bad_request
from .requestinfo import RequestInfo
from .store import Store

RBAC_GROUP = "rbac.authorization.k8s.io"
AUTHORIZATION_GROUP = "authorization.k8s.io"
Rule = dict[str, Any]

#: The bootstrap policy a fresh cluster has (the part that matters here): cluster-admin for system:masters,
#: discovery and self-reviews for every authenticated user, health and version for everyone.
BOOTSTRAP_CLUSTER_ROLES: dict[str, list[Rule]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "system:discovery": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                              "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                          "verbs": ["get"]}],
    "system:basic-user": [{"apiGroups": [AUTHORIZATION_GROUP],
                           "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                           "verbs": ["create"]}],
    "system:public-info-viewer": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                                   "verbs": ["get"]}],
}
BOOTSTRAP_BINDINGS: dict[str, tuple[str, list[str]]] = {
    "cluster-admin": ("cluster-admin", [MASTERS]),
    "system:discovery": ("system:discovery", ["system:authenticated"]),
    "system:basic-user": ("system:basic-user", ["system:authenticated"]),
    "system:public-info-viewer": ("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
}


def bootstrap_objects() -> list[tuple[str, dict[str, Any]]]:
    """(plural, object) of the bootstrap ClusterRoles and ClusterRoleBindings, labelled as the API server labels
    them."""
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    annotations = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    out: list[tuple[str, dict[str, Any]]] = []
    for name, rules in BOOTSTRAP_CLUSTER_ROLES.items():
        out.append(("clusterroles", {"metadata": {"name": name, "labels": labels, "annotations": annotations},
                                     "rules": rules}))
    for name, (role, groups) in BOOTSTRAP_BINDINGS.items():
        out.append(("clusterrolebindings", {
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]}))
    return out


@dataclass(frozen=True)
class Attributes:
    """Who asks (``user``) what (``request``, as the API server's RequestInfo resolver names it)."""

    user: UserInfo
    request: RequestInfo

    def __getattr__(self, name: str) -> Any:  # verb, namespace, api_group, resource, ... of the request
        return getattr(self.request, name)

    def forbidden_message(self) -> str:
        """The apiserver's ``forbiddenMessage``."""
        if not self.resource_request:
            return f'User "{self.user.name}" cannot {self.verb} path "{self.path}"'
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (f'User "{self.user.name}" cannot {self.verb} resource "{resource}" in API group "{self.api_group}" '
                f"{where}")


def _has(values: Iterable[str] | None, wanted: str) -> bool:
    values = list(values or [])
    return "*" in values or wanted in values


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """``RuleAllows``: verb, then API group, resource (``*``, ``res/sub``, ``*/sub``) and resourceName, or the
    non-resource URL (exact, or a prefix ending in ``*``)."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return any(url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1]))
                   for url in rule.get("nonResourceURLs") or [])
    if not _has(rule.get("apiGroups"), attrs.api_group):
        return False
    resources = rule.get("resources") or []
    if attrs.subresource:
        combined = f"{attrs.resource}/{attrs.subresource}"
        if not ("*" in resources or combined in resources or f"*/{attrs.subresource}" in resources):
            return False
    elif not _has(resources, attrs.resource):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == user.name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


class RbacAuthorizer:
    """Decisions from the Roles, ClusterRoles, RoleBindings and ClusterRoleBindings in ``store``."""

    def __init__(self, store: Store, types: dict[tuple[str, str], Any]) -> None:
        self.store = store
        self.types = types

    def _list(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.store.list(self.types[(RBAC_GROUP, plural)], namespace)

    def _role_rules(self, ref: dict[str, Any], namespace: str) -> list[Rule]:
        """The rules of a binding's roleRef; a missing role raises the registry's 404 wording as a ValueError."""
        kind, name = ref.get("kind"), str(ref.get("name"))
        if kind == "ClusterRole":
            role = self.store.find(self.types[(RBAC_GROUP, "clusterroles")], "", name)
            if role is None:
                raise ValueError(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        else:
            role = self.store.find(self.types[(RBAC_GROUP, "roles")], namespace, name)
            if role is None:
                raise ValueError(f'role.rbac.authorization.k8s.io "{name}" not found')
        return list(role.get("rules") or [])

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones only for ""), and the errors met
        resolving bindings to missing roles."""
        rules: list[Rule] = []
        errors: list[str] = []
        bindings = [(b, "") for b in self._list("clusterrolebindings")]
        if namespace:
            bindings += [(b, namespace) for b in self._list("rolebindings", namespace)]
        for binding, ns in bindings:
            if not any(_subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                continue
            try:
                rules.extend(self._role_rules(binding.get("roleRef") or {}, ns))
            except ValueError as err:
                errors.append(str(err))
        return rules, errors

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason): system:masters always, else any rule that allows; the reason names resolution
        errors, as ``RBAC: ...``."""
        if MASTERS in attrs.user.groups:
            return True, ""
        rules, errors = self.rules_for(attrs.user, attrs.namespace)
        if any(rule_allows(rule, attrs) for rule in rules):
            return True, ""
        return False, ("RBAC: " + ", ".join(f"[{e}]" if len(errors) > 1 else e for e in errors)) if errors else ""

    def check(self, attrs: Attributes) -> None:
        """Raise the API server's 403 unless ``attrs`` is allowed."""
        allowed, reason = self.authorize(attrs)
        if allowed:
            return
        message = attrs.forbidden_message() + (f": {reason}" if reason else "")
        if not attrs.resource_request:
            raise ApiError(403, f"forbidden: {message}", "Forbidden", {})
        qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
        details: dict[str, Any] = {"name": attrs.name} if attrs.name else {}
        if attrs.api_group:
            details["group"] = attrs.api_group
        details["kind"] = attrs.resource
        subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
        raise ApiError(403, f"{subject} is forbidden: {message}", "Forbidden", details)

    # -- escalation prevention ------------------------------------------------------------------------------

    def check_grant(self, user: UserInfo, plural: str, namespace: str | None, body: dict[str, Any]) -> None:
        """The rbac registry's checks on a Role/ClusterRole (``escalate``, or hold every rule) and a
        RoleBinding/ClusterRoleBinding (``bind`` on the role, or hold every rule of it)."""
        if MASTERS in user.groups:
            return
        ns = namespace or ""
        name = str((body.get("metadata") or {}).get("name") or "")
        qualified = f"{plural}.{RBAC_GROUP}"
        if plural in ("roles", "clusterroles"):
            escalate = Attributes(user, RequestInfo("escalate", "", True, RBAC_GROUP, "v1", ns, plural))
            if self.authorize(escalate)[0]:
                return
            granted = list(body.get("rules") or [])
        elif plural in ("rolebindings", "clusterrolebindings"):
            ref = body.get("roleRef") or {}
            role_plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            bind = Attributes(user, RequestInfo("bind", "", True, RBAC_GROUP, "v1", ns, role_plural,
                                                name=str(ref.get("name") or "")))
            if self.authorize(bind)[0]:
                return
            try:
                granted = self._role_rules(ref, ns)
            except ValueError as err:
                raise ApiError(403, f'{qualified} "{name}" is forbidden: {err}', "Forbidden",
                               {"name": name, "group": RBAC_GROUP, "kind": plural}) from None
        else:
            return
        held, errors = self.rules_for(user, ns)
        missing = [r for r in _breakdown(granted) if not any(_covers(owner, r) for owner in held)]
        if not missing:
            return
        groups = " ".join(json.dumps(g) for g in user.groups)
        text = "\n".join(sorted({_compact_string(r) for r in _compact(missing)}))
        message = (f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions not currently '
                   f"held:\n{text}")
        if errors:
            message += f"; resolution errors: [{' '.join(errors)}]"
        raise ApiError(403, f'{qualified} "{name}" is forbidden: {message}', "Forbidden",
                       {"name": name, "group": RBAC_GROUP, "kind": plural})

    # -- reviews --------------------------------------------------------------------------------------------

    def access_review(self, user: UserInfo, kind: str, body: Any) -> dict[str, Any]:
        """The answer to a SelfSubjectAccessReview (``kubectl auth can-i VERB RESOURCE``) or SelfSubjectRulesReview
        (``kubectl auth can-i --list``) ``body``."""
        if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
            raise bad_request(f"the body of the request was not a JSON object for a {kind}")
        spec = body["spec"]
        answer = {"kind": kind, "apiVersion": f"{AUTHORIZATION_GROUP}/v1",
                  "metadata": {"creationTimestamp": None}, "spec": spec}
        if kind == "SelfSubjectRulesReview":
            rules, errors = self.rules_for(user, str(spec.get("namespace") or ""))
            if MASTERS in user.groups:
                rules = BOOTSTRAP_CLUSTER_ROLES["cluster-admin"] + rules
            resource_rules = [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
                              for r in rules if not r.get("nonResourceURLs")]
            non_resource = [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                            for r in rules if r.get("nonResourceURLs")]
            status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": non_resource,
                                      "incomplete": bool(errors)}
            if errors:
                status["evaluationError"] = "; ".join(errors)
            answer["status"] = status
            return answer
        resource = spec.get("resourceAttributes")
        if isinstance(resource, dict):
            attrs = Attributes(user, RequestInfo(
                str(resource.get("verb") or ""), "", True, str(resource.get("group") or ""),
                str(resource.get("version") or ""), str(resource.get("namespace") or ""),
                str(resource.get("resource") or ""), str(resource.get("subresource") or ""),
                str(resource.get("name") or "")))
        else:
            non_resource = spec.get("nonResourceAttributes") or {}
            attrs = Attributes(user, RequestInfo(str(non_resource.get("verb") or ""),
                                                 str(non_resource.get("path") or "")))
        allowed, reason = self.authorize(attrs)
        status = {"allowed": allowed}
        if allowed:
            status["reason"] = ("allowed by the system:masters group" if MASTERS in user.groups
                                else "RBAC: allowed by a binding")
        elif reason:
            status["reason"] = reason
        answer["status"] = status
        return answer


def _breakdown(rules: Iterable[Rule]) -> list[Rule]:
    """Each rule split into rules of one verb, group, resource and resourceName (or one URL), as ``Covers`` does."""
    out: list[Rule] = []
    for rule in rules:
        verbs = rule.get("verbs") or []
        for url, verb in itertools.product(rule.get("nonResourceURLs") or [], verbs):
            out.append({"nonResourceURLs": [url], "verbs": [verb]})
        names: list[str | None] = list(rule.get("resourceNames") or []) or [None]
        for group, resource, verb, name in itertools.product(rule.get("apiGroups") or [], rule.get("resources") or [],
                                                             verbs, names):
            one: Rule = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
            if name is not None:
                one["resourceNames"] = [name]
            out.append(one)
    return out


def _covers(owner: Rule, one: Rule) -> bool:
    """Whether ``owner`` grants the single-valued rule ``one``."""
    if not _has(owner.get("verbs"), one["verbs"][0]):
        return False
    if one.get("nonResourceURLs"):
        url = one["nonResourceURLs"][0]
        return any(o == "*" or o == url or (o.endswith("*") and url.startswith(o[:-1]))
                   for o in owner.get("nonResourceURLs") or [])
    if not _has(owner.get("apiGroups"), one["apiGroups"][0]):
        return False
    resource = one["resources"][0]
    owned = owner.get("resources") or []
    head, _, sub = resource.partition("/")
    if not ("*" in owned or resource in owned or (sub and f"*/{sub}" in owned)
            or (f"{head}/*" in owned and sub)):
        return False
    names = owner.get("resourceNames") or []
    return not names or (bool(one.get("resourceNames")) and one["resourceNames"][0] in names)


def _compact(rules: list[Rule]) -> list[Rule]:
    """``CompactRules``: single-resource rules that differ only in their verbs become one rule."""
    merged: dict[str, Rule] = {}
    for rule in rules:
        key = json.dumps({k: v for k, v in rule.items() if k != "verbs"}, sort_keys=True)
        if key in merged:
            merged[key]["verbs"] = [*merged[key]["verbs"], *[v for v in rule["verbs"] if v not in merged[key]["verbs"]]]
        else:
            merged[key] = {**rule, "verbs": list(rule["verbs"])}
    return list(merged.values())


def _compact_string(rule: Rule) -> str:
    """``CompactString``: ``{APIGroups:["" ], Resources:["pods"], Verbs:["get"]}`` with Go's %q of a slice."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
                       ("resourceNames", "ResourceNames"), ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:[{' '.join(json.dumps(v) for v in rule[key])}]")
    return "{" + ", ".join(parts) + "}"
