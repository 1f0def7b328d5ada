"""kubelite authenticates tokens and client certificates and authorizes every request with the RBAC rules stored in
it, as the API server's RBAC authorizer does: verbs, resourceNames, subresources, groups, non-resource URLs, the
namespace a namespace request is in, bindings to missing roles, and the bind/escalate checks on RBAC objects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import KubeLite

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def as_user(kube: KubeLite, tmp_path: Path) -> Callable[..., Any]:
    @asynccontextmanager
    async def make(user: str, groups: tuple[str, ...] = ()) -> AsyncIterator[client.ApiClient]:
        path = kube.write_kubeconfig(tmp_path / f"kubeconfig-{user}", token=kube.user_token(user, groups))
        cfg = client.Configuration()
        await config.load_kube_config(config_file=str(path), client_configuration=cfg)
        async with client.ApiClient(configuration=cfg) as api:
            yield api

    return make


def message(err: ApiException) -> str:
    return json.loads(err.body)["message"]


async def bind(api: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]],
               subject: dict[str, str]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    await rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    await rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name}, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
        "subjects": [subject]})


async def test_requests_are_authorized_by_the_stored_rules(api: client.ApiClient, namespace: str,
                                                          as_user: Callable[..., Any]) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "one"}})
    await core.create_namespaced_config_map(namespace, {"metadata": {"name": "two"}})
    await bind(api, namespace, "reader", [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
    ], {"kind": "Group", "name": "readers", "apiGroup": RBAC})
    async with as_user("bob", ("readers",)) as bob:
        bob_core = client.CoreV1Api(bob)
        assert (await bob_core.read_namespaced_config_map("one", namespace)).metadata.name == "one"
        assert (await bob_core.read_namespace(namespace)).metadata.name == namespace  # a namespace is in itself
        with pytest.raises(ApiException) as err:
            await bob_core.read_namespaced_config_map("two", namespace)
        assert err.value.status == 403 and message(err.value) == (
            f'configmaps "two" is forbidden: User "bob" cannot get resource "configmaps" in API group "" in the '
            f'namespace "{namespace}"')
        with pytest.raises(ApiException) as err:
            await bob_core.list_namespaced_config_map(namespace)
        assert message(err.value) == (f'configmaps is forbidden: User "bob" cannot list resource "configmaps" in API '
                                      f'group "" in the namespace "{namespace}"')
        with pytest.raises(ApiException) as err:
            await bob_core.read_namespaced_pod("p", namespace)  # pods/log does not grant pods
        assert 'cannot get resource "pods" in API group ""' in message(err.value)
        with pytest.raises(ApiException) as err:
            await bob_core.read_namespaced_pod_log("p", namespace)  # allowed: the pod does not exist
        assert err.value.status == 404
        with pytest.raises(ApiException) as err:
            await bob_core.list_namespace()
        assert message(err.value) == ('namespaces is forbidden: User "bob" cannot list resource "namespaces" in API '
                                      'group "" at the cluster scope')
        assert (await client.VersionApi(bob).get_code()).major == "1"  # system:discovery for the authenticated
        with pytest.raises(ApiException) as err:
            await bob.call_api("/metrics", "GET", auth_settings=["BearerToken"])
        assert err.value.status == 403 and message(err.value) == 'forbidden: User "bob" cannot get path "/metrics"'

    async with as_user("carol") as carol:  # not in the group
        with pytest.raises(ApiException) as err:
            await client.CoreV1Api(carol).read_namespaced_config_map("one", namespace)
        assert err.value.status == 403


async def test_binding_to_a_missing_role_says_so(api: client.ApiClient, namespace: str,
                                                 as_user: Callable[..., Any]) -> None:
    await client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "dangling"}, "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "ghost"},
        "subjects": [{"kind": "User", "name": "dave", "apiGroup": RBAC}]})
    async with as_user("dave") as dave:
        with pytest.raises(ApiException) as err:
            await client.CoreV1Api(dave).list_namespaced_pod(namespace)
    assert message(err.value).endswith(': RBAC: role.rbac.authorization.k8s.io "ghost" not found')


async def test_rbac_objects_grant_only_what_their_creator_holds(api: client.ApiClient, namespace: str,
                                                                as_user: Callable[..., Any]) -> None:
    await bind(api, namespace, "role-maker", [
        {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [RBAC], "resources": ["clusterroles"], "resourceNames": ["bindable"], "verbs": ["bind"]},
    ], {"kind": "User", "name": "erin", "apiGroup": RBAC})
    await client.RbacAuthorizationV1Api(api).create_cluster_role({"metadata": {"name": "bindable"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}]})
    async with as_user("erin") as erin:
        rbac = client.RbacAuthorizationV1Api(erin)
        await rbac.create_namespaced_role(namespace, {"metadata": {"name": "subset"}, "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        with pytest.raises(ApiException) as err:
            await rbac.create_namespaced_role(namespace, {"metadata": {"name": "more"}, "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "delete", "create"]}]})
        assert err.value.status == 403 and message(err.value) == (
            'roles.rbac.authorization.k8s.io "more" is forbidden: user "erin" (groups=["system:authenticated"]) is '
            'attempting to grant RBAC permissions not currently held:\n'
            '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}')
        binding = {"roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "bindable"},
                   "subjects": [{"kind": "User", "name": "frank", "apiGroup": RBAC}]}
        await rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": "ok"}, **binding})  # bind verb
        with pytest.raises(ApiException) as err:
            await rbac.create_namespaced_role_binding(namespace, {
                "metadata": {"name": "admin"}, **binding, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                                      "name": "cluster-admin"}})
        assert 'rolebindings.rbac.authorization.k8s.io "admin" is forbidden: user "erin"' in message(err.value)
        assert "not currently held" in message(err.value)

        review = await client.AuthorizationV1Api(erin).create_self_subject_access_review({
            "spec": {"resourceAttributes": {"verb": "list", "resource": "pods", "namespace": namespace}}})
        assert review.status.allowed is True
        review = await client.AuthorizationV1Api(erin).create_self_subject_access_review({
            "spec": {"resourceAttributes": {"verb": "delete", "resource": "pods", "namespace": namespace}}})
        assert review.status.allowed is False


async def test_client_certificate_user_and_groups(kube: KubeLite, tmp_path: Path, namespace: str) -> None:
    path = kube.write_kubeconfig(tmp_path / "cert", client=kube.client_certificate("grace", ("system:masters",)))
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        review = await client.AuthorizationV1Api(api).create_self_subject_access_review({
            "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
        assert review.status.allowed is True
        assert namespace in {n.metadata.name for n in (await client.CoreV1Api(api).list_namespace()).items}
