package kernelfleet.toree

/** The launcher's command line and environment.
 *
 * The launcher consumes its own options and passes everything else to Toree unchanged. LAUNCH_TOKEN is read from the
 * environment only: a command line is visible to every user of the host.
 */
final case class Options(
    kernelId: String,
    responseAddress: String,
    publicKey: String,
    portRange: PortRange,
    sparkInitMode: String,
    launchToken: String,
    kernelIp: String,
    toreeArgs: Vector[String]
)

object Options {
  final class UsageError(message: String) extends Exception(message)

  private val Consumed = Set("kernel-id", "port-range", "response-address", "public-key", "spark-context-initialization-mode")
  val SparkModes: Set[String] = Set("none", "lazy", "eager")

  def parse(args: Array[String], env: String => Option[String]): Options = {
    val given = scala.collection.mutable.Map.empty[String, String]
    val passThrough = Vector.newBuilder[String]
    var i = 0
    while (i < args.length) {
      val arg = args(i)
      // Old kernelspecs spell the options --RemoteProcessProxy.<name>.
      val bare = arg.stripPrefix("--RemoteProcessProxy.").stripPrefix("--")
      val (name, inline) = bare.split("=", 2) match {
        case Array(n, v) => (n, Some(v))
        case Array(n)    => (n, None)
      }
      if (arg.startsWith("--") && Consumed.contains(name)) {
        val value = inline.getOrElse {
          i += 1
          if (i >= args.length) throw new UsageError(s"option --$name needs a value")
          args(i)
        }
        given(name) = value.trim
      } else if (arg == "--profile") {
        // The launcher writes Toree's connection file itself; a caller's profile would bypass the chosen ports.
        i += 1
        Log.warn("ignoring --profile: the launcher writes Toree's connection file")
      } else passThrough += arg
      i += 1
    }

    def nonEmpty(v: Option[String]): Option[String] = v.map(_.trim).filter(_.nonEmpty)
    def pick(opt: String, vars: String*): Option[String] =
      nonEmpty(given.get(opt)).orElse(vars.iterator.map(v => nonEmpty(env(v))).collectFirst { case Some(x) => x })
    def required(opt: String, vars: String*): String =
      pick(opt, vars: _*).getOrElse(throw new UsageError(s"--$opt (or ${vars.mkString(" / ")}) is required"))

    val kernelId = required("kernel-id", "KERNEL_ID")
    if (!Protocol.validKernelId(kernelId))
      throw new UsageError("kernel id must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit")
    val responseAddress = required("response-address", "RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS")
    val publicKey = required("public-key", "PUBLIC_KEY", "EG_PUBLIC_KEY")
    val portRange =
      try PortRange.parse(pick("port-range", "PORT_RANGE", "EG_PORT_RANGE"))
      catch { case e: IllegalArgumentException => throw new UsageError(e.getMessage) }
    val mode = pick("spark-context-initialization-mode", "KERNEL_SPARK_CONTEXT_INIT_MODE").getOrElse("none").toLowerCase
    if (!SparkModes.contains(mode))
      throw new UsageError(s"spark context initialization mode must be one of none, lazy, eager")
    val token = nonEmpty(env("LAUNCH_TOKEN"))
      .orElse(nonEmpty(env(TokenFdVariable)).flatMap(readTokenFd))
      .orElse(nonEmpty(env(TokenFileVariable)).map(readTokenFile))
      .getOrElse(throw new UsageError(s"LAUNCH_TOKEN (or $TokenFileVariable) is not set in the environment"))
    val kernelIp = nonEmpty(env("KERNEL_IP")).getOrElse("0.0.0.0")

    Options(kernelId, responseAddress, publicKey, portRange, mode, token, kernelIp, passThrough.result())
  }

  /** run.sh moves LAUNCH_TOKEN out of the environment (where every cell of the kernel could read it, in `sys.env`
   * or /proc/self/environ) into a pipe and names its descriptor here. */
  val TokenFdVariable = "KERNELFLEET_LAUNCH_TOKEN_FD"

  private def readTokenFd(fd: String): Option[String] = {
    if (!fd.forall(Character.isDigit) || fd.length > 4) throw new UsageError(s"$TokenFdVariable must be a descriptor number")
    val in = new java.io.FileInputStream(s"/dev/fd/$fd")
    try CommServer.readLine(in, 1024).toOption.map(_.trim).filter(_.nonEmpty)
    catch { case _: java.io.IOException => None }
    finally in.close()
  }

  /** Container provisioners hand the token over as a file named here, so that it is in no object the engine shows
   * and in no process environment. */
  val TokenFileVariable = "LAUNCH_TOKEN_FILE"
  val MaxTokenFileBytes = 4096

  /** The token from the file, which is then removed where possible (a Swarm secret is a read-only mount: it goes
   * with the service, and the token is void once the report is accepted). */
  private def readTokenFile(path: String): String = {
    val file = java.nio.file.Paths.get(path)
    val bytes =
      try {
        val in = java.nio.file.Files.newInputStream(file)
        try in.readNBytes(MaxTokenFileBytes + 1)
        finally in.close()
      } catch {
        case e: java.io.IOException =>
          throw new UsageError(s"$TokenFileVariable '$path' cannot be read (${e.getClass.getSimpleName})")
      }
    try java.nio.file.Files.deleteIfExists(file)
    catch { case _: java.io.IOException | _: SecurityException => () }
    if (bytes.length > MaxTokenFileBytes)
      throw new UsageError(s"$TokenFileVariable '$path' is larger than $MaxTokenFileBytes bytes: not a token file")
    val token = new String(bytes, java.nio.charset.StandardCharsets.US_ASCII).trim
    if (token.isEmpty) throw new UsageError(s"$TokenFileVariable '$path' is empty")
    token
  }

  /** Toree's arguments: ours translated (`none` -> --nosparkcontext), the alternate interrupt signal defaulted to USR2
   * (plain SIGINT never reaches a JVM started in the background), and the caller's other options as given. */
  def toreeArgs(opts: Options, profile: String): Vector[String] = {
    val mode =
      if (opts.sparkInitMode == "none") Vector("--nosparkcontext")
      else Vector("--spark-context-initialization-mode", opts.sparkInitMode)
    val sig = if (opts.toreeArgs.contains("--alternate-sigint")) Vector.empty else Vector("--alternate-sigint", "USR2")
    Vector("--profile", profile) ++ mode ++ sig ++ opts.toreeArgs
  }

  /** The signal Toree interrupts on: the value after --alternate-sigint. */
  def alternateSigint(toreeArgs: Seq[String]): String =
    toreeArgs.sliding(2).collectFirst { case Seq("--alternate-sigint", s) => s }.getOrElse("USR2")
}
