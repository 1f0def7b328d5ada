"""API-level behaviour of kubelite checked through the real kubernetes_asyncio client: error Status shapes,
validation, selectors, RBAC and custom objects, as the Kubernetes API documents them."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kernelfleet.kubelite import UNSCHEDULABLE_ANNOTATION, KubeLite
from kernelfleet.kubelite.testing import pod_manifest

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

NO_NODE = {UNSCHEDULABLE_ANNOTATION: "true"}  # keeps API-only pods off Docker


def status_of(err: ApiException) -> dict[str, Any]:
    body = json.loads(err.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert body["metadata"] == {}
    assert body["code"] == err.status
    return body


async def test_namespace_crud_and_error_shapes(core: client.CoreV1Api) -> None:
    created = await core.create_namespace({"metadata": {"name": "alpha", "labels": {"team": "a"}}})
    assert created.status.phase == "Active"
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    assert created.metadata.labels["kubernetes.io/metadata.name"] == "alpha"
    # The default ServiceAccount is there as soon as the namespace is.
    sa = await core.read_namespaced_service_account("default", "alpha")
    assert sa.metadata.namespace == "alpha"

    with pytest.raises(ApiException) as exc:
        await core.create_namespace({"metadata": {"name": "alpha"}})
    body = status_of(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'namespaces "alpha" already exists'
    assert body["details"] == {"name": "alpha", "kind": "namespaces"}

    with pytest.raises(ApiException) as exc:
        await core.read_namespace("nope")
    body = status_of(exc.value)
    assert (exc.value.status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nope" not found')
    assert body["details"] == {"name": "nope", "kind": "namespaces"}

    listed = await core.list_namespace(label_selector="team=a")
    assert [n.metadata.name for n in listed.items] == ["alpha"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)

    # The API answers a namespace DELETE with the Namespace itself, now Terminating (the generated client
    # would squeeze it into a V1Status, so read it raw).
    response = await core.delete_namespace("alpha", _preload_content=False)
    deleted = json.loads(await response.read())
    assert deleted["kind"] == "Namespace" and deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"]["deletionTimestamp"]
    w = watch.Watch()
    async for event in w.stream(core.list_namespace, field_selector="metadata.name=alpha", timeout_seconds=10,
                                resource_version=deleted["metadata"]["resourceVersion"]):
        if event["type"] == "DELETED":
            break
    else:
        pytest.fail("namespace deletion never completed")
    await w.close()
    with pytest.raises(ApiException) as exc:
        await core.read_namespace("alpha")
    assert exc.value.status == 404

    with pytest.raises(ApiException) as exc:
        await core.delete_namespace("default")
    assert exc.value.status == 403 and status_of(exc.value)["reason"] == "Forbidden"


async def test_invalid_names_and_namespace_admission(core: client.CoreV1Api, namespace: str) -> None:
    with pytest.raises(ApiException) as exc:
        await core.create_namespace({"metadata": {"name": "Bad_Name"}})
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["kind"] == "Namespace" and body["details"]["name"] == "Bad_Name"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    assert "RFC 1123 label" in body["message"]

    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("missing-ns", pod_manifest("p", "busybox", ["true"]))
    body = status_of(exc.value)
    assert exc.value.status == 404 and body["message"] == 'namespaces "missing-ns" not found'

    manifest = pod_manifest("p", "busybox", ["true"], serviceAccountName="kernels")
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, manifest)
    body = status_of(exc.value)
    assert exc.value.status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (f'pods "p" is forbidden: error looking up service account {namespace}/kernels: '
                               'serviceaccount "kernels" not found')


async def test_invalid_pod_spec_is_422_with_causes(core: client.CoreV1Api, namespace: str) -> None:
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "broken", "labels": {"ok": "bad value!"}},
           "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "Main_1"}, {"image": "x"}]}}
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, bad)
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["name"] == "broken" and body["details"]["kind"] == "Pod"
    causes = {(c["field"], c["reason"]) for c in body["details"]["causes"]}
    assert ("spec.containers[1].name", "FieldValueRequired") in causes  # from the official schema
    assert ("spec.restartPolicy", "FieldValueNotSupported") in causes
    assert body["message"].startswith('Pod "broken" is invalid: [')

    fixed = {**bad, "metadata": {"name": "broken"},
             "spec": {"containers": [{"name": "Main_1"}, {"name": "two"}]}}
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, fixed)
    causes = {(c["field"], c["reason"]) for c in status_of(exc.value)["details"]["causes"]}
    assert causes == {("spec.containers[0].name", "FieldValueInvalid"),
                      ("spec.containers[0].image", "FieldValueRequired"),
                      ("spec.containers[1].image", "FieldValueRequired")}

    # A wrong JSON type is a decode error (400), as on a real API server.
    typed = pod_manifest("typed", "busybox", ["true"])
    typed["spec"]["containers"][0]["command"] = "true"
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, typed)
    assert exc.value.status == 400 and "cannot unmarshal string" in status_of(exc.value)["message"]

    # Unknown fields are rejected only with fieldValidation=Strict.
    extra = pod_manifest("extra", "busybox", ["true"], annotations=NO_NODE)
    extra["spec"]["bogus"] = 1
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod(namespace, extra, field_validation="Strict")
    assert exc.value.status == 400 and 'unknown field "spec.bogus"' in status_of(exc.value)["message"]
    created = await core.create_namespaced_pod(namespace, extra)
    assert created.metadata.name == "extra"


async def test_label_and_field_selectors(core: client.CoreV1Api, namespace: str) -> None:
    specs = {"a1": {"app": "a", "tier": "web"}, "a2": {"app": "a"}, "b1": {"app": "b", "tier": "db"}}
    for name, labels in specs.items():
        await core.create_namespaced_pod(namespace, pod_manifest(name, "busybox", ["true"], labels=labels,
                                                                 annotations=NO_NODE))

    async def names(**kw: Any) -> list[str]:
        return sorted(p.metadata.name for p in (await core.list_namespaced_pod(namespace, **kw)).items)

    assert await names() == ["a1", "a2", "b1"]
    assert await names(label_selector="app=a") == ["a1", "a2"]
    assert await names(label_selector="app==b") == ["b1"]
    assert await names(label_selector="app!=a") == ["b1"]
    assert await names(label_selector="tier in (web,db)") == ["a1", "b1"]
    assert await names(label_selector="tier notin (web)") == ["a2", "b1"]
    assert await names(label_selector="tier") == ["a1", "b1"]
    assert await names(label_selector="!tier") == ["a2"]
    assert await names(label_selector="app=a,tier=web") == ["a1"]
    assert await names(field_selector="metadata.name=a2") == ["a2"]
    assert await names(field_selector="metadata.name!=a2,status.phase=Pending") == ["a1", "b1"]
    everywhere = await core.list_pod_for_all_namespaces(label_selector="app=a")
    assert {p.metadata.namespace for p in everywhere.items} == {namespace}

    page = await core.list_namespaced_pod(namespace, limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = await core.list_namespaced_pod(namespace, limit=2, _continue=page.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["b1"] and not rest.metadata._continue

    with pytest.raises(ApiException) as exc:
        await core.list_namespaced_pod(namespace, label_selector="app in a")
    assert exc.value.status == 400
    with pytest.raises(ApiException) as exc:
        await core.list_namespaced_pod(namespace, field_selector="spec.bogus=1")
    assert exc.value.status == 400 and "field label not supported" in status_of(exc.value)["message"]


async def test_pod_update_rules_and_conflicts(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    pod = await core.create_namespaced_pod(namespace, pod_manifest("u", "busybox", ["true"], annotations=NO_NODE))
    patched = await core.patch_namespaced_pod("u", namespace, {"metadata": {"labels": {"extra": "yes"}}})
    assert patched.metadata.labels["extra"] == "yes"
    assert int(patched.metadata.resource_version) > int(pod.metadata.resource_version)

    raw = api.sanitize_for_serialization(pod)
    raw["metadata"]["labels"] = {"x": "y"}
    with pytest.raises(ApiException) as exc:
        await core.replace_namespaced_pod("u", namespace, raw)
    body = status_of(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_pod("u", namespace, {"spec": {"restartPolicy": "Always"}})
    assert exc.value.status == 422
    assert status_of(exc.value)["details"]["causes"][0]["reason"] == "FieldValueForbidden"

    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_pod("nope", namespace)
    body = status_of(exc.value)
    assert body["message"] == 'pods "nope" not found' and body["details"] == {"name": "nope", "kind": "pods"}


async def test_rbac_and_service_accounts(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": "kernels"}})
    binding = {"metadata": {"name": "kernel-controller", "labels": {"app": "kernelfleet"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"kind": "ServiceAccount", "name": "kernels", "namespace": namespace}]}
    created = await rbac.create_namespaced_role_binding(namespace, binding)
    assert created.role_ref.name == "edit" and created.metadata.namespace == namespace
    with pytest.raises(ApiException) as exc:
        await rbac.create_namespaced_role_binding(namespace, binding)
    body = status_of(exc.value)
    assert body["message"] == 'rolebindings.rbac.authorization.k8s.io "kernel-controller" already exists'
    assert body["details"] == {"name": "kernel-controller", "group": "rbac.authorization.k8s.io",
                               "kind": "rolebindings"}
    with pytest.raises(ApiException) as exc:
        await rbac.create_namespaced_role_binding(namespace, {"metadata": {"name": "x"}})
    causes = {c["field"] for c in status_of(exc.value)["details"]["causes"]}
    assert "roleRef" in causes

    listed = await rbac.list_namespaced_role_binding(namespace, label_selector="app=kernelfleet")
    assert [b.metadata.name for b in listed.items] == ["kernel-controller"]
    gone = await rbac.delete_namespaced_role_binding("kernel-controller", namespace)
    assert gone.status == "Success" and gone.details.name == "kernel-controller"
    assert [s.metadata.name for s in (await core.list_namespaced_service_account(namespace)).items] == [
        "default", "kernels"]


async def test_custom_objects_crud_status_and_watch(api: client.ApiClient, namespace: str) -> None:
    custom = client.CustomObjectsApi(api)
    group, version, plural = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
    body = {"apiVersion": f"{group}/{version}", "kind": "SparkApplication",
            "metadata": {"name": "app", "labels": {"kernel_id": "k1"}},
            "spec": {"type": "Python", "mode": "cluster", "image": "not-present:1", "sparkVersion": "3.5.0",
                     "driver": {"cores": 1}, "executor": {"instances": 1}},
            "status": {"applicationState": {"state": "COMPLETED"}}}
    created = await custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    assert created["metadata"]["generation"] == 1 and "status" not in created  # status is a subresource
    with pytest.raises(ApiException) as exc:
        await custom.create_namespaced_custom_object(group, version, namespace, plural, body)
    assert status_of(exc.value)["message"] == 'sparkapplications.sparkoperator.k8s.io "app" already exists'

    w = watch.Watch()
    states = []
    async for event in w.stream(custom.list_namespaced_custom_object, group, version, namespace, plural,
                                label_selector="kernel_id=k1", timeout_seconds=10):
        state = (event["object"].get("status") or {}).get("applicationState", {}).get("state")
        states.append((event["type"], state))
        if state == "SUBMITTED":
            patched = await custom.patch_namespaced_custom_object_status(
                group, version, namespace, plural, "app",
                {"status": {"applicationState": {"state": "FAILED", "errorMessage": "boom"}}},
                _content_type="application/merge-patch+json")
            assert patched["status"]["applicationState"]["state"] == "FAILED"
        if state == "FAILED":
            break
    await w.close()
    assert states[-1] == ("MODIFIED", "FAILED")
    assert ("MODIFIED", "SUBMITTED") in states or ("ADDED", "SUBMITTED") in states

    got = await custom.get_namespaced_custom_object(group, version, namespace, plural, "app")
    assert got["status"]["driverInfo"]["podName"] == "app-driver"
    listed = await custom.list_namespaced_custom_object(group, version, namespace, plural)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["app"]

    deleted = await custom.delete_namespaced_custom_object(group, version, namespace, plural, "app",
                                                           grace_period_seconds=0)
    assert deleted["status"] == "Success" and deleted["details"]["group"] == group
    with pytest.raises(ApiException) as exc:
        await custom.get_namespaced_custom_object(group, version, namespace, plural, "app")
    assert exc.value.status == 404

    with pytest.raises(ApiException) as exc:
        await custom.list_namespaced_custom_object("example.com", "v1", namespace, "widgets")
    assert exc.value.status == 404 and status_of(exc.value)["reason"] == "NotFound"


async def test_unauthorized_without_token(kube: KubeLite, tmp_path: Path) -> None:
    assert kube.ca is not None
    cfg = client.Configuration(host=kube.url)
    cfg.ssl_ca_cert = str(tmp_path / "ca.crt")
    (tmp_path / "ca.crt").write_bytes(kube.ca.cert_pem)
    async with client.ApiClient(configuration=cfg) as anonymous:
        with pytest.raises(ApiException) as exc:
            await client.CoreV1Api(anonymous).list_namespace()
    assert exc.value.status == 401 and status_of(exc.value)["reason"] == "Unauthorized"


async def test_discovery_and_version(api: client.ApiClient) -> None:
    version = await client.VersionApi(api).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.36")
    groups = await client.ApisApi(api).get_api_versions()
    assert "rbac.authorization.k8s.io" in {g.name for g in groups.groups}
    resources = await client.CoreV1Api(api).get_api_resources()
    assert {"pods", "namespaces", "events", "serviceaccounts", "pods/status"} <= {r.name for r in resources.resources}


async def test_secrets_store_string_data_as_base64_data(core: client.CoreV1Api, namespace: str) -> None:
    created = await core.create_namespaced_secret(namespace, {
        "metadata": {"name": "s"}, "type": "Opaque", "immutable": True,
        "data": {"a": base64.b64encode(b"one").decode(), "b": base64.b64encode(b"old").decode()},
        "stringData": {"b": "two", "c.key_x-y": "three"}})
    assert created.string_data is None
    assert {k: base64.b64decode(v).decode() for k, v in created.data.items()} == {
        "a": "one", "b": "two", "c.key_x-y": "three"}  # stringData wins over data on a shared key
    stored = await core.read_namespaced_secret("s", namespace)
    assert stored.data == created.data and stored.string_data is None

    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_secret("s", namespace, {"stringData": {"a": "changed"}})
    body = status_of(exc.value)
    assert exc.value.status == 422
    assert body["details"]["causes"] == [{"reason": "FieldValueForbidden", "field": "data",
                                          "message": "Forbidden: field is immutable when `immutable` is set"}]
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_secret(namespace, {"metadata": {"name": "bad"}, "data": {"k": "not base64!"}})
    assert exc.value.status == 400 and "illegal base64 data" in status_of(exc.value)["message"]
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_secret(namespace, {"metadata": {"name": "bad"}, "stringData": {"a b": "x"}})
    assert exc.value.status == 422
    assert status_of(exc.value)["details"]["causes"][0]["field"] == "data[a b]"


async def test_forbidden_verbs_answer_like_rbac(kube: KubeLite, core: client.CoreV1Api, namespace: str) -> None:
    kube.forbid("create", "secrets", namespace=namespace)
    kube.forbid("delete", "secrets")
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    body = status_of(exc.value)
    assert exc.value.status == 403 and body["reason"] == "Forbidden" and body["details"] == {"kind": "secrets"}
    assert body["message"] == ('secrets is forbidden: User "system:serviceaccount:kernelfleet:kernelfleet" cannot '
                               f'create resource "secrets" in API group "" in the namespace "{namespace}"')
    await core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    with pytest.raises(ApiException) as exc:
        await core.delete_namespaced_secret("s", "default")
    assert status_of(exc.value)["message"].startswith('secrets "s" is forbidden: User ')
    assert status_of(exc.value)["details"] == {"name": "s", "kind": "secrets"}
    assert (await core.read_namespaced_secret("s", "default")).metadata.name == "s"  # other verbs still work
    kube.permit("delete", "secrets")
    await core.delete_namespaced_secret("s", "default")
    kube.permit("create", "secrets", namespace=namespace)
    await core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})


async def test_delete_preconditions_protect_a_replacement(api: client.ApiClient, core: client.CoreV1Api,
                                                          namespace: str) -> None:
    """DeleteOptions.preconditions as a real API server checks them: a uid or resourceVersion that is not the
    stored object's deletes nothing and answers 409 Conflict with the storage layer's wording; the right ones
    delete. Checked for a namespaced built-in, a custom object and a namespace."""
    secret = await core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "data": {}})
    uid, version = secret.metadata.uid, secret.metadata.resource_version
    with pytest.raises(ApiException) as exc:
        await core.delete_namespaced_secret("s", namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    status = status_of(exc.value)
    assert exc.value.status == 409 and status["reason"] == "Conflict" and status["code"] == 409
    assert status["details"] == {"name": "s", "kind": "secrets"}
    assert status["message"] == (
        f'Operation cannot be fulfilled on secrets "s": StorageError: invalid object, Code: 4, Key: /registry/secrets/'
        f"{namespace}/s, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: "
        f"not-the-uid, UID in object meta: {uid}")
    with pytest.raises(ApiException) as exc:
        await core.delete_namespaced_secret("s", namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version="1")))
    assert "Precondition failed: ResourceVersion in precondition: 1, ResourceVersion in object meta: " \
           f"{version}" in status_of(exc.value)["message"]
    assert (await core.read_namespaced_secret("s", namespace)).metadata.uid == uid  # still there
    await core.delete_namespaced_secret("s", namespace, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=uid, resource_version=version)))
    with pytest.raises(ApiException) as exc:
        await core.read_namespaced_secret("s", namespace)
    assert exc.value.status == 404

    custom = client.CustomObjectsApi(api)
    group, version_, plural = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
    app = await custom.create_namespaced_custom_object(group, version_, namespace, plural, {
        "apiVersion": f"{group}/{version_}", "kind": "SparkApplication", "metadata": {"name": "app"},
        "spec": {"type": "Python", "mode": "cluster", "image": "not-present:1", "sparkVersion": "3.5.0"}})
    with pytest.raises(ApiException) as exc:
        await custom.delete_namespaced_custom_object(group, version_, namespace, plural, "app",
                                                     body={"preconditions": {"uid": "other"}})
    message = status_of(exc.value)["message"]
    assert message.startswith('Operation cannot be fulfilled on sparkapplications.sparkoperator.k8s.io "app": ')
    assert f"Key: /registry/{group}/{plural}/{namespace}/app," in message
    await custom.delete_namespaced_custom_object(group, version_, namespace, plural, "app",
                                                 body={"preconditions": {"uid": app["metadata"]["uid"]}})

    ns = await core.read_namespace(namespace)
    with pytest.raises(ApiException) as exc:
        await core.delete_namespace(namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="other")))
    assert f"Key: /registry/namespaces/{namespace}," in status_of(exc.value)["message"]
    assert (await core.read_namespace(namespace)).status.phase == "Active"
    await core.delete_namespace(namespace, body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=ns.metadata.uid)))
    listed = await core.list_namespace(field_selector=f"metadata.name={namespace}")
    assert [n.status.phase for n in listed.items] in ([], ["Terminating"])
