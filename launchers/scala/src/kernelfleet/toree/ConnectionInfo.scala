package kernelfleet.toree

/** The kernel's connection info: written (without our fields) as Toree's `--profile` file and sent (with them) sealed
 * in the report. Field order is the order of docs/protocol-vectors.json so encodings compare byte for byte. */
final case class ConnectionInfo(
    shellPort: Int,
    iopubPort: Int,
    stdinPort: Int,
    controlPort: Int,
    hbPort: Int,
    ip: String,
    key: String,
    kernelName: String,
    commPort: Int,
    commKey: String,
    launchToken: String,
    pid: Option[Long],
    pgid: Option[Long],
    kernelId: String,
    launcher: Option[String]
) {
  private def kernelFields(bindIp: String): Seq[(String, Any)] = Seq(
    "shell_port" -> shellPort,
    "iopub_port" -> iopubPort,
    "stdin_port" -> stdinPort,
    "control_port" -> controlPort,
    "hb_port" -> hbPort,
    "ip" -> bindIp,
    "key" -> key,
    "transport" -> "tcp",
    "signature_scheme" -> "hmac-sha256",
    "kernel_name" -> kernelName
  )

  /** The plaintext of the report. It holds the launch token and both keys: never log it. */
  def reportJson: String =
    Json.encode(
      kernelFields(ip) ++ Seq("comm_port" -> commPort, "comm_key" -> commKey, "launch_token" -> launchToken) ++
        pid.map("pid" -> _) ++ pgid.map("pgid" -> _) ++ Seq("kernel_id" -> kernelId) ++ launcher.map("launcher" -> _)
    )

  /** A Jupyter connection file for Toree, binding `bindIp` (which may be 0.0.0.0 while `ip` is what we report). */
  def profileJson(bindIp: String): String = Json.encode(kernelFields(bindIp))
}
