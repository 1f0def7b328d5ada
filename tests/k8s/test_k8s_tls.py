"""The provisioner reaches the API server over HTTPS as it would a real cluster, by each way a Jupyter server is
configured: a kubeconfig with a bearer token (every other k8s test), a kubeconfig with a client certificate, and the
in-cluster service-account directory with KUBERNETES_SERVICE_HOST/PORT; a server whose certificate does not verify
against the configured CA is refused before any request, with an error naming it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_helpers import pods_of
from kf_testing import connect, execute, manager
from kubernetes_asyncio import client

from kernelfleet.kubelite import KubeLite
from kernelfleet.kubelite.tls import ClusterCA
from kernelfleet.provisioners.base import LaunchError
from kernelfleet.provisioners.leases import close_all

pytestmark = pytest.mark.timeout(120)


async def run_a_cell(kernels_dir: Path, name: str, core: client.CoreV1Api) -> None:
    km = manager(kernels_dir, name)
    await km.start_kernel()
    try:
        kc = await connect(km)
        try:
            assert (await execute(kc, "6 * 7"))["result"] == "42"
        finally:
            kc.stop_channels()
        assert len(await pods_of(core, km.kernel_id)) == 1
    finally:
        await km.shutdown_kernel()
    assert await pods_of(core, km.kernel_id) == []


async def test_kubeconfig_with_token_verifies_the_ca(kube: KubeLite, tmp_path: Path) -> None:
    """The fixtures' kubeconfig is a token user over HTTPS, with the CA inline."""
    assert kube.url.startswith("https://")
    kubeconfig = json.loads((tmp_path / "kubeconfig").read_text())
    cluster = kubeconfig["clusters"][0]["cluster"]
    assert kube.ca is not None
    assert base64.b64decode(cluster["certificate-authority-data"]) == kube.ca.cert_pem
    assert "token" in kubeconfig["users"][0]["user"]


async def test_kubeconfig_with_client_certificate(kube: KubeLite, core: client.CoreV1Api, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
                                                  k8s_spec: Callable[..., str]) -> None:
    """CN is the user, O its groups: a certificate in system:masters runs kernels, one without any binding is
    refused with the API server's 403 naming the certificate's user."""
    admin = kube.write_kubeconfig(tmp_path / "cert-admin", client=kube.client_certificate("jupyter-admin",
                                                                                           ("system:masters",)))
    monkeypatch.setenv("KUBECONFIG", str(admin))
    spec = k8s_spec("cert")
    await run_a_cell(kernels_dir, spec, core)
    await close_all()  # the loop's client lingers for the next kernel: make the next one read KUBECONFIG again

    nobody = kube.write_kubeconfig(tmp_path / "cert-nobody", client=kube.client_certificate("nobody", ("staff",)))
    monkeypatch.setenv("KUBECONFIG", str(nobody))
    km = manager(kernels_dir, spec)
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    assert km.kernel_id in str(err.value)
    assert 'namespaces "default" is forbidden: User "nobody" cannot get resource "namespaces" in API group "" in ' \
           'the namespace "default"' in str(err.value)


async def test_in_cluster_service_account(kube: KubeLite, core: client.CoreV1Api, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
                                          k8s_spec: Callable[..., str]) -> None:
    """As in a pod: token, ca.crt and namespace files, KUBERNETES_SERVICE_HOST/PORT, no kubeconfig."""
    await core.create_namespaced_service_account("default", {"metadata": {"name": "jupyter"}})
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    await rbac.create_cluster_role_binding({
        "metadata": {"name": "jupyter-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "jupyter", "namespace": "default"}]})
    env = kube.write_service_account_dir(tmp_path / "serviceaccount", "default", "jupyter")
    assert {p.name for p in (tmp_path / "serviceaccount").iterdir()} == {"token", "ca.crt", "namespace"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KF_SERVICE_ACCOUNT_DIR", str(tmp_path / "serviceaccount"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    await run_a_cell(kernels_dir, k8s_spec("incluster"), core)


async def test_untrusted_server_is_refused(kube: KubeLite, core: client.CoreV1Api, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, kernels_dir: Path,
                                           k8s_spec: Callable[..., str]) -> None:
    """A kubeconfig whose CA did not sign the server's certificate (a man in the middle, or the wrong cluster)."""
    kubeconfig = kube.kubeconfig()
    other = ClusterCA("someone-else-ca")
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(other.cert_pem).decode()
    path = tmp_path / "wrong-ca"
    path.write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    km = manager(kernels_dir, k8s_spec("untrusted"))
    with pytest.raises(LaunchError) as err:
        await km.start_kernel()
    message = str(err.value)
    assert km.kernel_id in message
    assert f"the Kubernetes API server {kube.url} presented a certificate that does not verify" in message
    assert "certificate-authority" in message
    assert (await core.list_pod_for_all_namespaces()).items == []
    assert (await core.list_secret_for_all_namespaces(label_selector="app=kernelfleet")).items == []
