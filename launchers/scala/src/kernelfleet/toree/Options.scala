package kernelfleet.toree

/** The launcher's command line and environment (docs/protocol.md section 2; the contract is
 * kernelfleet.protocol.contract, and ContractCheck runs docs/launcher-vectors.json's cases here).
 *
 * The launcher consumes its own options and passes everything else to Toree unchanged. An option wins over its
 * variable, the variable over its EG_ name; empty, blank and unfilled `{placeholder}` values count as unset.
 * LAUNCH_TOKEN is read from the environment only: a command line is visible to every user of the host.
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
  val SparkModes: Seq[String] = Seq("none", "lazy", "eager")

  /** The contract's blanks (space, tab, CR, LF): what is trimmed from every value, and nothing else (String.trim
   * would also drop control characters). */
  private val Blanks = "^[ \t\r\n]+|[ \t\r\n]+$"

  /** A value as read: trimmed; None when empty or an unfilled `{placeholder}` the server left in the argv. */
  def setValue(v: Option[String]): Option[String] =
    v.map(_.replaceAll(Blanks, "")).filter(x => x.nonEmpty && !(x.startsWith("{") && x.endsWith("}")))

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
        given(name) = value
      } else if (arg == "--profile") {
        // The launcher writes Toree's connection file itself; a caller's profile would bypass the chosen ports.
        i += 1
        Log.warn("ignoring --profile: the launcher writes Toree's connection file")
      } else passThrough += arg
      i += 1
    }

    def pick(opt: String, vars: String*): Option[String] =
      setValue(given.get(opt)).orElse(vars.iterator.map(v => setValue(env(v))).collectFirst { case Some(x) => x })
    def required(opt: String, variable: String, legacy: String*): String =
      pick(opt, variable +: legacy: _*).getOrElse(throw new UsageError(
        s"$variable is required (give --$opt or set the $variable environment variable)"))

    val kernelId = required("kernel-id", "KERNEL_ID")
    if (!Protocol.validKernelId(kernelId))
      throw new UsageError(s"--kernel-id / KERNEL_ID '${kernelId.take(140)}' must be 1-128 characters of [A-Za-z0-9._-], " +
        "starting with a letter or digit")
    val responseAddress = required("response-address", "RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS")
    val publicKey = required("public-key", "PUBLIC_KEY", "EG_PUBLIC_KEY")
    val portRange =
      try PortRange.parse(pick("port-range", "PORT_RANGE", "EG_PORT_RANGE"))
      catch { case e: IllegalArgumentException => throw new UsageError(s"--port-range / PORT_RANGE: ${e.getMessage}") }
    val modeText = pick("spark-context-initialization-mode", "KERNEL_SPARK_CONTEXT_INIT_MODE").getOrElse("none")
    val mode = modeText.toLowerCase
    if (!SparkModes.contains(mode))
      throw new UsageError(s"--spark-context-initialization-mode / KERNEL_SPARK_CONTEXT_INIT_MODE must be one of " +
        s"${SparkModes.mkString(", ")}, not '$modeText'")
    val token = setValue(env("LAUNCH_TOKEN"))
      .orElse(setValue(env(TokenFdVariable)).flatMap(readTokenFd))
      .orElse(setValue(env(TokenFileVariable)).map(readTokenFile))
      .getOrElse(throw new UsageError(
        s"LAUNCH_TOKEN is required in the environment, or $TokenFileVariable naming a file that holds it " +
          "(the server sets one of them; the token is never taken from the command line)"))
    val kernelIp = setValue(env("KERNEL_IP")).getOrElse("0.0.0.0")

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
