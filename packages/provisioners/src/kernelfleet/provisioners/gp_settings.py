"""Gateway Provisioners' environment settings, one row each: which Kernel Fleet honours and through which setting,
and which have no effect here, with the setting that does the job instead.

This table is the single source for three things: the warning a server logs when an operator's environment still
sets a ``GP_*`` name that does nothing here (``warn_about_gp_environment``, called once per process by
``RemoteProvisionerBase``), the migration guide (``tools/migration-docs`` writes
``docs/migrating-from-gateway-provisioners.md`` from it), and ``tests/repo/test_gp_settings.py``, which sets every
honoured name and checks that the named setting really takes its value — so the guide cannot claim what the code
does not do.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass


class Support(enum.Enum):
    """What a ``GP_*`` name does in Kernel Fleet."""

    HONOURED = "honoured"  #: read, with Gateway Provisioners' meaning
    CHANGED = "honoured, changed"  #: read; the note says what differs (a default, a unit, a safer behaviour)
    NO_EFFECT = "no effect"  #: not read; a server that sees it set logs a warning naming what does the job


@dataclass(frozen=True)
class SettingProbe:
    """How the test proves an honoured name: set ``name=sample`` in the environment, make ``owner`` (``module:Class``)
    with no arguments, and read ``setting``; it must equal ``expected``."""

    owner: str
    setting: str
    sample: str
    expected: object


@dataclass(frozen=True)
class GpEnvironmentName:
    """One of Gateway Provisioners 0.5.0's environment names and what it does here."""

    name: str
    support: Support
    ours: str  #: our setting or variable that does the job (``Class.setting (KF_NAME)``), or what replaces it
    note: str
    probe: SettingProbe | None = None  #: for settings the test can read back
    verified_by: str = ""  #: otherwise: the test (``path::name``) that shows the behaviour


_BROKER = "kernelfleet.provisioners.broker:ResponseBroker"
_BASE = "kernelfleet.provisioners.docker.provisioner:DockerProvisioner"  # any provisioner inherits the base settings
_SSH = "kernelfleet.provisioners.ssh.distributed:DistributedProvisioner"
_DOCKER = "kernelfleet.provisioners.docker.provisioner:DockerProvisioner"
_K8S = "kernelfleet.provisioners.k8s.provisioner:KubernetesProvisioner"
_SPARK_OPERATOR = "kernelfleet.provisioners.k8s.spark_operator:SparkOperatorProvisioner"
_YARN = "kernelfleet.provisioners.yarn.provisioner:YarnProvisioner"

GP_ENVIRONMENT: tuple[GpEnvironmentName, ...] = (
    # ---------------------------------------------------------------- every provisioner
    GpEnvironmentName(
        "GP_LAUNCH_TIMEOUT", Support.HONOURED, "RemoteProvisionerBase.launch_timeout (KF_LAUNCH_TIMEOUT)",
        "Seconds to wait for the launcher's report. A request's KERNEL_LAUNCH_TIMEOUT is capped by "
        "max_launch_timeout (600 s by default) instead of being taken as sent.",
        SettingProbe(_BASE, "launch_timeout", "45", 45.0),
    ),
    GpEnvironmentName(
        "GP_PORT_RANGE", Support.HONOURED, "RemoteProvisionerBase.port_range (KF_PORT_RANGE)",
        "'lower..upper' or '0..0'. The kernel binds its ports itself inside the range, so two kernels never race "
        "for one port.",
        SettingProbe(_BASE, "port_range", "40000..41999", "40000..41999"),
    ),
    GpEnvironmentName(
        "GP_MIN_PORT_RANGE_SIZE", Support.HONOURED, "RemoteProvisionerBase.min_port_range_size",
        "Smallest non-zero port range a kernelspec may give.",
        SettingProbe(_BASE, "min_port_range_size", "2000", 2000),
    ),
    GpEnvironmentName(
        "GP_MAX_PORT_RANGE_RETRIES", Support.NO_EFFECT, "nothing to set: the kernel binds its own ports",
        "Gateway Provisioners picked ports on the server and retried when the kernel lost them; the launcher now "
        "binds inside the range and reports only ports it holds, so there is nothing to retry.",
    ),
    GpEnvironmentName(
        "GP_AUTHORIZED_USERS", Support.HONOURED, "RemoteProvisionerBase.authorized_users (KF_AUTHORIZED_USERS)",
        "Comma-separated user names allowed to start the kernel.",
        SettingProbe(_BASE, "authorized_users", "alice,bob", {"alice", "bob"}),
    ),
    GpEnvironmentName(
        "GP_UNAUTHORIZED_USERS", Support.HONOURED, "RemoteProvisionerBase.unauthorized_users (KF_UNAUTHORIZED_USERS)",
        "Comma-separated user names never allowed (default root).",
        SettingProbe(_BASE, "unauthorized_users", "root,mallory", {"root", "mallory"}),
    ),
    GpEnvironmentName(
        "GP_INHERITED_ENVS", Support.HONOURED, "RemoteProvisionerBase.inherited_envs (KF_INHERITED_ENVS)",
        "Server variables passed on to kernels. Nothing else of the server's environment reaches a kernel.",
        SettingProbe(_BASE, "inherited_envs", "TZ,LANG", ["TZ", "LANG"]),
    ),
    GpEnvironmentName(
        "GP_SOCKET_TIMEOUT", Support.NO_EFFECT, "RemoteProvisionerBase.comm_timeout",
        "Gateway Provisioners' blocking sockets woke every GP_SOCKET_TIMEOUT seconds; every socket here is "
        "asynchronous. How long to wait for a launcher's answer on its comm port is comm_timeout (seconds).",
    ),
    GpEnvironmentName(
        "GP_POLL_INTERVAL", Support.NO_EFFECT, "nothing to set: engine events, watches and sockets wake the server",
        "Nothing polls at a fixed interval: a kernel's end arrives as an event from its engine.",
    ),
    GpEnvironmentName(
        "GP_MAX_POLL_ATTEMPTS", Support.NO_EFFECT, "RemoteProvisionerBase.launch_timeout",
        "The launch waits for the report or the engine's failure, whichever comes first, up to launch_timeout.",
    ),
    # ---------------------------------------------------------------- response address (the broker)
    GpEnvironmentName(
        "GP_RESPONSE_IP", Support.HONOURED, "ResponseBroker.advertised_ip (KF_RESPONSE_IP)",
        "The address launchers report to.",
        SettingProbe(_BROKER, "advertised_ip", "10.1.2.3", "10.1.2.3"),
    ),
    GpEnvironmentName(
        "GP_RESPONSE_PORT", Support.HONOURED, "ResponseBroker.port (KF_RESPONSE_PORT)",
        "The response port (default 8877). One port serves every kernel of the server.",
        SettingProbe(_BROKER, "port", "9977", 9977),
    ),
    GpEnvironmentName(
        "GP_RESPONSE_PORT_RETRIES", Support.HONOURED, "ResponseBroker.port_retries",
        "Further ports tried when the response port is taken.",
        SettingProbe(_BROKER, "port_retries", "3", 3),
    ),
    GpEnvironmentName(
        "GP_RESPONSE_ADDR_ANY", Support.HONOURED, "ResponseBroker.bind_ip (KF_RESPONSE_BIND_IP)",
        "true binds the response port on every interface (0.0.0.0).",
        SettingProbe(_BROKER, "bind_ip", "true", "0.0.0.0"),
    ),
    GpEnvironmentName(
        "GP_PROHIBITED_LOCAL_IPS", Support.HONOURED, "ResponseBroker.prohibited_local_ips (KF_PROHIBITED_LOCAL_IPS)",
        "Regular expressions of this host's addresses never advertised as the response address (e.g. a Docker "
        "bridge). When every address is prohibited, a launch that needs one fails with a message naming the "
        "setting instead of being given a prohibited address.",
        SettingProbe(_BROKER, "prohibited_local_ips", r"172\.17\..*,10\.0\.0\.1", [r"172\.17\..*", r"10\.0\.0\.1"]),
    ),
    # ---------------------------------------------------------------- SSH hosts
    GpEnvironmentName(
        "GP_REMOTE_HOSTS", Support.HONOURED, "DistributedProvisioner.remote_hosts",
        "Comma-separated hosts (default localhost).",
        SettingProbe(_SSH, "remote_hosts", "node1,node2", ["node1", "node2"]),
    ),
    GpEnvironmentName(
        "GP_REMOTE_USER", Support.HONOURED, "DistributedProvisioner.ssh_user (KF_SSH_USER)",
        "The account used on the hosts.",
        SettingProbe(_SSH, "ssh_user", "kernels", "kernels"),
    ),
    GpEnvironmentName(
        "GP_SSH_PORT", Support.HONOURED, "DistributedProvisioner.ssh_port (KF_SSH_PORT)",
        "The hosts' SSH port.",
        SettingProbe(_SSH, "ssh_port", "2222", 2222),
    ),
    GpEnvironmentName(
        "GP_LOAD_BALANCING_ALGORITHM", Support.HONOURED, "DistributedProvisioner.load_balancing_algorithm",
        "round-robin or least-connection; a host that failed recently is tried last.",
        SettingProbe(_SSH, "load_balancing_algorithm", "least-connection", "least-connection"),
    ),
    GpEnvironmentName(
        "GP_ENABLE_TUNNELING", Support.HONOURED, "DistributedProvisioner.tunneling (KF_ENABLE_TUNNELING)",
        "Kernel ports reached through the SSH connection instead of the network.",
        SettingProbe(_SSH, "tunneling", "true", True),
    ),
    GpEnvironmentName(
        "GP_TUNNEL_MAX_KEEP_ALIVE", Support.NO_EFFECT, "DistributedProvisioner.ssh_keepalive_interval",
        "Gateway Provisioners ran one ssh process per tunnel that gave up after this many seconds; tunnels here "
        "live on the host's SSH connection for as long as the kernel, and ssh_keepalive_interval detects a dead "
        "connection.",
    ),
    GpEnvironmentName(
        "GP_KERNEL_LOG_DIR", Support.HONOURED, "DistributedProvisioner.remote_log_dir (KF_KERNEL_LOG_DIR)",
        "Where the launcher's output is kept on the host.",
        SettingProbe(_SSH, "remote_log_dir", "/var/log/kernels", "/var/log/kernels"),
    ),
    GpEnvironmentName(
        "GP_REMOTE_PWD", Support.HONOURED, "the SSH login password (KF_SSH_PASSWORD, or ssh_password_file)",
        "Read at connect time, handed only to the SSH client, never logged or shown in an error. A file "
        "(ssh_password_file, 0600) keeps it out of the server's environment.",
        verified_by="tests/ssh/test_ssh_kerberos.py::test_password_settings_from_the_provisioner",
    ),
    GpEnvironmentName(
        "GP_REMOTE_GSS_SSH", Support.HONOURED, "DistributedProvisioner.ssh_gss_auth (KF_SSH_GSS_AUTH)",
        "Kerberos (GSSAPI) logins to the SSH hosts with the server's ticket; needs the kerberos extra. See "
        "docs/kerberos.md.",
        SettingProbe(_SSH, "ssh_gss_auth", "true", True),
    ),
    # ---------------------------------------------------------------- containers
    GpEnvironmentName(
        "GP_IMAGE_NAME", Support.HONOURED, "ContainerProvisioner.image_name (KF_IMAGE_NAME)",
        "The kernel image when the kernelspec names none.",
        SettingProbe(_DOCKER, "image_name", "acme/kernel-py:1", "acme/kernel-py:1"),
    ),
    GpEnvironmentName(
        "GP_EXECUTOR_IMAGE_NAME", Support.HONOURED, "KubernetesProvisioner.executor_image_name, "
        "SparkOperatorProvisioner.executor_image_name (KF_EXECUTOR_IMAGE_NAME)",
        "Spark executors' image: of a k8s_*_spark kernelspec (spark-submit in cluster mode) or a SparkApplication.",
        SettingProbe(_K8S, "executor_image_name", "acme/spark:1", "acme/spark:1"),
    ),
    GpEnvironmentName(
        "GP_MIRROR_WORKING_DIRS", Support.HONOURED, "ContainerProvisioner.mirror_working_dirs",
        "A request's KERNEL_WORKING_DIR becomes the container's working directory.",
        SettingProbe(_DOCKER, "mirror_working_dirs", "true", True),
    ),
    GpEnvironmentName(
        "GP_PROHIBITED_UIDS", Support.HONOURED, "ContainerProvisioner.prohibited_uids (KF_PROHIBITED_UIDS)",
        "User ids a request may not run a container as (default 0).",
        SettingProbe(_DOCKER, "prohibited_uids", "0,1001", {0, 1001}),
    ),
    GpEnvironmentName(
        "GP_PROHIBITED_GIDS", Support.HONOURED, "ContainerProvisioner.prohibited_gids (KF_PROHIBITED_GIDS)",
        "Group ids a request may not run a container as (default 0).",
        SettingProbe(_DOCKER, "prohibited_gids", "0,1001", {0, 1001}),
    ),
    GpEnvironmentName(
        "GP_DOCKER_NETWORK", Support.HONOURED, "DockerProvisioner.network (KF_DOCKER_NETWORK)",
        "The Docker network kernels join.",
        SettingProbe(_DOCKER, "network", "kernels-net", "kernels-net"),
    ),
    GpEnvironmentName(
        "GP_DOCKER_MODE", Support.NO_EFFECT, "the kernelspec's provisioner_name",
        "Set by Gateway Provisioners for its own launcher; here the entry point (docker-provisioner or "
        "docker-swarm-provisioner) says which mode runs.",
    ),
    GpEnvironmentName(
        "GP_REMOVE_CONTAINER", Support.CHANGED, "DockerProvisioner.remove_container (KF_REMOVE_CONTAINER)",
        "false keeps a container that ended on its own (a failed launch, a crashed kernel), stopped and renamed "
        "<name>-kept-<time> so a restart can reuse the name, for docker logs / docker inspect; remove it yourself. "
        "A kernel the server stops is removed either way. docker-provisioner only (Swarm removes its services).",
        SettingProbe(_DOCKER, "remove_container", "false", False),
    ),
    GpEnvironmentName(
        "GP_DOCKER_LOG_LEVEL", Support.NO_EFFECT, "the server's logging configuration",
        "Engine client libraries log through the server's loggers; set their level there.",
    ),
    # ---------------------------------------------------------------- Kubernetes
    GpEnvironmentName(
        "GP_NAMESPACE", Support.HONOURED, "KubernetesProvisioner.namespace (KF_NAMESPACE)",
        "The namespace kernels run in when one is shared.",
        SettingProbe(_K8S, "namespace", "kernels", "kernels"),
    ),
    GpEnvironmentName(
        "GP_SHARED_NAMESPACE", Support.HONOURED, "KubernetesProvisioner.shared_namespace",
        "true: every kernel in namespace; false: a namespace per kernel.",
        SettingProbe(_K8S, "shared_namespace", "false", False),
    ),
    GpEnvironmentName(
        "GP_KERNEL_CLUSTER_ROLE", Support.HONOURED, "KubernetesProvisioner.kernel_cluster_role",
        "The ClusterRole bound to the kernel's service account in a per-kernel namespace.",
        SettingProbe(_K8S, "kernel_cluster_role", "kernel-role", "kernel-role"),
    ),
    GpEnvironmentName(
        "GP_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME", Support.HONOURED, "KubernetesProvisioner.service_account_name",
        "The kernel pod's service account. A request may choose another only with allow_client_service_account.",
        SettingProbe(_K8S, "service_account_name", "kernel-sa", "kernel-sa"),
    ),
    GpEnvironmentName(
        "GP_USE_INCLUSTER_CONFIG", Support.HONOURED, "the Kubernetes client's configuration",
        "true reads the pod's service-account token and CA; otherwise the kubeconfig (KUBECONFIG) is used.",
        verified_by="tests/k8s/test_k8s_requests.py",
    ),
    GpEnvironmentName(
        "GP_APP_NAME", Support.NO_EFFECT, "the labels app=kernelfleet, component=kernel, kernel_id=<id>",
        "Every object a kernel owns is labelled app=kernelfleet; select on that (or on kernel_id) in network "
        "policies and scripts.",
    ),
    GpEnvironmentName(
        "GP_POD_TEMPLATE_DIR", Support.NO_EFFECT, "KubernetesProvisioner.pod_template",
        "No rendered template is written to disk: the pod is built in memory and sent to the API server.",
    ),
    GpEnvironmentName(
        "GP_KUBERNETES_LOG_LEVEL", Support.NO_EFFECT, "the server's logging configuration",
        "Engine client libraries log through the server's loggers; set their level there.",
    ),
    # ---------------------------------------------------------------- YARN and Spark
    GpEnvironmentName(
        "GP_YARN_ENDPOINT", Support.HONOURED, "YarnProvisioner.yarn_endpoint (KF_YARN_ENDPOINT)",
        "The ResourceManager's REST endpoint (http://rm:8088/ws/v1/cluster).",
        SettingProbe(_YARN, "yarn_endpoint", "http://rm1:8088/ws/v1/cluster", "http://rm1:8088/ws/v1/cluster"),
    ),
    GpEnvironmentName(
        "GP_ALT_YARN_ENDPOINT", Support.HONOURED, "YarnProvisioner.alt_yarn_endpoint (KF_ALT_YARN_ENDPOINT)",
        "The HA partner; a standby's redirect is followed and a failover in the middle of a launch loses nothing.",
        SettingProbe(_YARN, "alt_yarn_endpoint", "http://rm2:8088/ws/v1/cluster", "http://rm2:8088/ws/v1/cluster"),
    ),
    GpEnvironmentName(
        "GP_YARN_ENDPOINT_SECURITY_ENABLED", Support.HONOURED,
        "YarnProvisioner.yarn_endpoint_security_enabled (KF_YARN_ENDPOINT_SECURITY_ENABLED)",
        "SPNEGO with the server's Kerberos ticket on every request to the RM (the kerberos extra; docs/kerberos.md).",
        SettingProbe(_YARN, "yarn_endpoint_security_enabled", "true", True),
    ),
    GpEnvironmentName(
        "GP_YARN_CERT_BUNDLE", Support.NO_EFFECT, "the server's CA store (SSL_CERT_FILE)",
        "An https:// RM endpoint is verified against the system's CA store; point SSL_CERT_FILE at a bundle "
        "that holds the RM's CA.",
    ),
    GpEnvironmentName(
        "GP_YARN_SHUTDOWN_WAIT_TIME", Support.NO_EFFECT, "the kernel manager's shutdown_wait_time",
        "A stopped kernel's application is killed through the RM as soon as its kernel has answered the shutdown; "
        "how long the kernel gets is jupyter_client's shutdown_wait_time.",
    ),
    GpEnvironmentName(
        "GP_YARN_LOG_LEVEL", Support.NO_EFFECT, "the server's logging configuration",
        "Engine client libraries log through the server's loggers; set their level there.",
    ),
    GpEnvironmentName(
        "GP_IMPERSONATION_ENABLED", Support.CHANGED,
        "DistributedProvisioner.impersonation_enabled (KF_IMPERSONATION_ENABLED)",
        "SSH hosts and local kernels: the launcher runs as KERNEL_USERNAME through impersonation_command (default "
        "sudo -n -H -E -u {user} --, whose sudoers rule needs SETENV), the name checked against a strict pattern "
        "and authorized_users / unauthorized_users (root refused by default); with spark_submit also "
        "--proxy-user, as GP had it. GP only added --proxy-user: set impersonation_command to [] for exactly that. "
        "Spark on Kubernetes in cluster mode (KubernetesProvisioner.impersonation_enabled): spark-submit "
        "--proxy-user with the same checks, the driver runs the application as that user. Other container "
        "kernels run as the account the engine gives them.",
        SettingProbe(_SSH, "impersonation_enabled", "True", True),
    ),
)

_BY_NAME = {row.name: row for row in GP_ENVIRONMENT}
_warned: set[str] = set()
_warned_lock = threading.Lock()


def no_effect_names_set(env: Mapping[str, str]) -> list[GpEnvironmentName]:
    """Pure: the rows of names set in ``env`` that do nothing here, in table order."""
    return [row for row in GP_ENVIRONMENT if row.support is Support.NO_EFFECT and row.name in env]


def warn_about_gp_environment(log: logging.Logger, env: Mapping[str, str] | None = None) -> None:
    """Log one warning per ``GP_*`` name that is set but does nothing here, naming what does the job instead.

    Called by ``RemoteProvisionerBase`` whenever a provisioner is made; each name is reported once per process, so
    an operator who migrates a Gateway Provisioners deployment sees every leftover setting in the first start's
    log without one line per kernel. Values are never logged (GP_REMOTE_PWD is a password).
    """
    for row in no_effect_names_set(os.environ if env is None else env):
        with _warned_lock:
            if row.name in _warned:
                continue
            _warned.add(row.name)
        log.warning("%s is set but has no effect in Kernel Fleet: %s Use instead: %s. "
                    "(docs/migrating-from-gateway-provisioners.md)", row.name, row.note, row.ours)


def gp_environment_name(name: str) -> GpEnvironmentName | None:
    """The row for ``name``, or None when it is not one of Gateway Provisioners' names."""
    return _BY_NAME.get(name)


@dataclass(frozen=True)
class ChangedDefault:
    """A default that differs from Gateway Provisioners' on purpose, with the one setting that restores the old
    behaviour (empty when restoring it would be unsafe or impossible). ``setting`` (``module:Class.trait``) must
    exist and have ``ours`` as its default: the test checks both."""

    topic: str
    gp: str
    ours: str
    why: str
    restore: str
    setting: str = ""
    default: object = None


CHANGED_DEFAULTS: tuple[ChangedDefault, ...] = (
    ChangedDefault(
        "Kernel image chosen by the request (KERNEL_IMAGE)", "taken as sent",
        "refused unless allowed", "an image is code that runs with the kernel's rights and network position",
        "allow_client_image: true in the kernelspec's config (optionally with allowed_images)",
        "kernelfleet.provisioners.docker.provisioner:DockerProvisioner.allow_client_image", False,
    ),
    ChangedDefault(
        "Namespace chosen by the request (KERNEL_NAMESPACE)", "taken as sent", "refused unless allowed",
        "a request could otherwise place a kernel, and its Secret, in any namespace the server can write",
        "allow_client_namespace: true",
        "kernelfleet.provisioners.k8s.provisioner:KubernetesProvisioner.allow_client_namespace", False,
    ),
    ChangedDefault(
        "Service account chosen by the request (KERNEL_SERVICE_ACCOUNT_NAME)", "taken as sent",
        "refused unless allowed", "a service account carries API rights the user may not have",
        "allow_client_service_account: true",
        "kernelfleet.provisioners.k8s.provisioner:KubernetesProvisioner.allow_client_service_account", False,
    ),
    ChangedDefault(
        "Volumes from the request (KERNEL_VOLUMES, KERNEL_VOLUME_MOUNTS)", "rendered into the pod template",
        "refused unless allowed; hostPath needs a second opt-in",
        "a hostPath volume is the node's file system",
        "allow_client_volumes: true (and allow_host_path_volumes: true for hostPath)",
        "kernelfleet.provisioners.k8s.provisioner:KubernetesProvisioner.allow_client_volumes", False,
    ),
    ChangedDefault(
        "The server's environment", "inherited by local kernels (jupyter_client passes it on)",
        "not inherited; only the names listed are passed on",
        "the server's environment holds its own credentials (cloud keys, tokens)",
        "inherited_envs: [NAME, ...] (env KF_INHERITED_ENVS or GP_INHERITED_ENVS)",
        "kernelfleet.provisioners.docker.provisioner:DockerProvisioner.inherited_envs", [],
    ),
    ChangedDefault(
        "Protocol-v1 launch reports (old kernel images)", "accepted", "refused, with a message naming the setting",
        "anyone who can reach the response port can forge a v1 report and take over a kernel's connection",
        "c.ResponseBroker.accept_v1_reports = True (env KF_ACCEPT_V1_REPORTS) while old images are replaced",
        "kernelfleet.provisioners.broker:ResponseBroker.accept_v1_reports", False,
    ),
    ChangedDefault(
        "The launch token in Kubernetes", "(none: reports were unauthenticated)",
        "a Secret per kernel, mounted into the pod", "the token must not appear in the pod spec, which many can read",
        "none: grant the server's account create/delete on Secrets (deploy/kubernetes)",
    ),
    ChangedDefault(
        "Kernel ports", "chosen by the server, retried on collision (GP_MAX_PORT_RANGE_RETRIES)",
        "bound by the kernel inside port_range and reported as held",
        "ports chosen and released before the kernel binds them are taken by others under load",
        "none needed: port_range keeps its meaning",
    ),
)


@dataclass(frozen=True)
class GpFeature:
    """One of Gateway Provisioners 0.5.0's other names — a flag, a launcher or request variable, a kernelspec file,
    a behaviour — and what it does here. ``verified_by`` (``path::test``) is the test that shows it, whatever the
    support: honoured or refused with the message that names our equivalent."""

    name: str
    where: str  #: where GP read it
    support: Support
    ours: str
    note: str
    verified_by: str


GP_FEATURES: tuple[GpFeature, ...] = (
    GpFeature(
        "--tensorflow", "jupyter k8s-spec / docker-spec install", Support.NO_EFFECT, "--image-name",
        "GP 0.5.0 defines the flag and never reads it; accepted so GP install scripts keep working, with a warning "
        "saying it changes nothing. Name an image with TensorFlow with --image-name.",
        "packages/provisioners/tests/test_cli_specs.py::test_tensorflow_flag_is_accepted_and_says_it_changes_nothing",
    ),
    GpFeature(
        "MIN_PORT_RANGE_SIZE", "the launcher's environment", Support.NO_EFFECT,
        "RemoteProvisionerBase.min_port_range_size (GP_MIN_PORT_RANGE_SIZE)",
        "The server checks a kernelspec's port_range against min_port_range_size before any launch; launchers take "
        "the range they are given.",
        "tests/repo/test_gp_settings.py::test_an_honoured_name_sets_the_setting_the_table_names",
    ),
    GpFeature(
        "MAX_PORT_RANGE_RETRIES", "the launcher's environment", Support.NO_EFFECT,
        "nothing to set: each launcher binds each port itself, with up to 50 random tries in the range",
        "GP's launcher picked ports, released them and retried when the kernel lost them; ours bind the sockets "
        "they report, so a lost port cannot happen.",
        "tests/e2e/test_port_race.py",
    ),
    GpFeature(
        "signals other than SIGINT, SIGTERM, SIGKILL", "send_signal -> the launcher's comm port", Support.CHANGED,
        "send_signal / KernelManager.signal_kernel, unchanged",
        "GP sent any signal number to the launcher as plain text. Protocol 2.2's authenticated comm port carries "
        "SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCONT, SIGSTOP and SIGTSTP by name (numbers differ across platforms) to "
        "the kernel alone; the Scala launcher refuses SIGSTOP and SIGTSTP, which would stop its own JVM and comm "
        "port. Any other signal, and any signal to a launcher older than protocol 2.2, raises an error naming the "
        "kernel, the signal and the launcher version needed (docs/protocol.md, section 4).",
        "tests/e2e/test_signals.py::test_an_allowed_signal_reaches_the_kernels_own_handler",
    ),
    GpFeature(
        "KERNEL_RESOURCE_NAME, KERNEL_CRD_GROUP, KERNEL_CRD_VERSION, KERNEL_CRD_PLURAL",
        "a Spark-operator kernel's environment", Support.HONOURED, "spark-operator-provisioner",
        "Set in the driver's and executors' environment as GP set them (the SparkApplication's name, "
        "sparkoperator.k8s.io, v1beta2, sparkapplications); a request cannot override them.",
        "packages/provisioners/tests/test_k8s_settings.py::"
        "test_driver_and_executors_know_their_application_by_gateway_provisioners_names",
    ),
    GpFeature(
        "KERNEL_SPARKAPP_CONFIG_MAP", "the SparkApplication template (spec.sparkConfigMap)", Support.CHANGED,
        "SparkOperatorProvisioner.spark_config_map",
        "Honoured from the kernelspec's env, over spark_config_map; a start request that sets it is refused "
        "(a spark-defaults ConfigMap can change the application's images and JVM options).",
        "packages/provisioners/tests/test_k8s_settings.py::"
        "test_the_kernelspecs_sparkapp_config_map_names_the_applications_spark_defaults",
    ),
    GpFeature(
        "scripts/sparkoperator.k8s.io-v1beta2.yaml.j2", "a --crd kernelspec's editable SparkApplication template",
        Support.NO_EFFECT, "SparkOperatorProvisioner's settings (spark_conf, driver_*, executor_*, ...)",
        "The application is built from typed settings, so no request value reaches its structure; a kernelspec "
        "that still carries the template gets a warning at each launch naming the settings to move its changes to.",
        "packages/provisioners/tests/test_k8s_settings.py::"
        "test_gps_sparkapplication_template_is_named_as_unused_with_the_settings_instead",
    ),
    GpFeature(
        "several documents in scripts/kernel-pod.yaml.j2", "kernel pod templates (a PVC or Secret next to the Pod)",
        Support.CHANGED, "KubernetesProvisioner.template_object_kinds (KF_TEMPLATE_OBJECT_KINDS)",
        "GP created every document with any kind and namespace and deleted only the pod, so each kernel leaked its "
        "PVC or Secret. Here the kinds the operator lists (PersistentVolumeClaim, Secret, ConfigMap, Service; never "
        "RBAC or cluster-scoped kinds) are created before the pod in the kernel's namespace, labelled as the "
        "kernel's and deleted with it (and by the orphan sweep); other documents fail the launch before anything "
        "is created. Restore: template_object_kinds: [PersistentVolumeClaim, Secret], and jupyter k8s-spec rbac "
        "--template-kind for the server's rights. A name with a suffix is written {{ kernel_pod_name ~ '-pvc' }}.",
        "tests/k8s/test_k8s_template_objects.py::test_template_objects_live_and_die_with_the_kernel",
    ),
    GpFeature(
        "--dask, --extra-dask-opts", "jupyter yarn-spec install", Support.CHANGED,
        "the same flags: a Python kernelspec with submission: rest and GP's DASK_OPTS",
        "GP's kernelspec runs dask-yarn submit, which passes the kernel's environment (the launch token) on its "
        "command line; ours is submitted through the RM's REST API, and the kernel starts its Dask cluster itself "
        "(`client`, `cluster`) from DASK_OPTS, as docs/yarn.md says. --extra-dask-opts is checked at install.",
        "packages/provisioners/tests/test_cli_specs.py::"
        "test_yarn_spec_dask_writes_a_rest_submitted_dask_client_kernelspec",
    ),
    GpFeature(
        "yarn_dask_python (bin/run.sh, DASK_YARN_EXE, DASK_OPTS)", "GP-written YARN kernelspecs", Support.CHANGED,
        "yarn-provisioner (any kernelspec whose env has DASK_OPTS)",
        "Runs unchanged, without its run.sh or dask-yarn submit: a REST-submitted AM whose DASK_OPTS become "
        "dask-yarn's DASK_YARN__* settings (--client-memory/--client-vcores/--client-env the AM's, never a command "
        "line); the kernel's `client` and GP's `cluster` start a dask_yarn.YarnCluster on first use.",
        "tests/yarn/test_yarn_dask.py::test_gp_written_dask_kernelspec_runs_unchanged",
    ),
)


#: Gateway Provisioners' launcher paths inside kernel images (under the bootstrap install dir, /usr/local/bin by
#: default) -> where ``jupyter image-bootstrap install`` puts ours. The GP path is installed too, so GP-written
#: kernelspecs and SparkApplications (``mainApplicationFile``) find our launchers unchanged; tests/repo checks it.
GP_IMAGE_PATHS: tuple[tuple[str, str], ...] = (
    ("kernel-launchers/python/scripts/launch_ipykernel.py", "kernel-launchers/python/launch_ipykernel.py"),
    ("kernel-launchers/R/scripts/launch_IRkernel.R", "kernel-launchers/r/launch_IRkernel.R"),
    ("bootstrap-kernel.sh", "bootstrap-kernel.sh"),
)
