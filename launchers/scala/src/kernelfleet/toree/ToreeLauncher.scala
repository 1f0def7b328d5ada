package kernelfleet.toree

import java.net.{Inet4Address, InetAddress, NetworkInterface}
import java.nio.charset.StandardCharsets.UTF_8
import java.nio.file.attribute.PosixFilePermissions
import java.nio.file.{Files, Path, Paths}
import java.security.SecureRandom
import java.util.concurrent.{CountDownLatch, TimeUnit}
import scala.collection.JavaConverters._
import scala.util.Try

/** Entry point (`spark-submit --class kernelfleet.toree.ToreeLauncher`): reserves the ports, starts the comm port,
 * runs Apache Toree's main in this JVM and sends the sealed report once Toree listens on every kernel port.
 *
 * Toree runs in-process, so "the kernel" of protocol v2 is this JVM: interrupt raises Toree's alternate interrupt
 * signal on ourselves, terminate exits with shutdown hooks (Toree's included), kill halts.
 */
object ToreeLauncher {
  val LauncherVersion = s"scala/${LauncherBuild.Version}" // LauncherBuild: generated from launchers/scala/VERSION
  private val TerminateWatchdogSeconds = 10L
  private val FirstListenProbeMillis = 20L
  private val MaxListenProbeMillis = 250L

  def main(args: Array[String]): Unit = {
    Log.configure(sys.env.get("LOG_LEVEL"))
    val code =
      try run(args)
      catch {
        case e: Options.UsageError => Log.error(s"usage: ${e.getMessage}"); 2
        case e: Report.Rejected    => Log.error(e.getMessage); 1
        case e: Protocol.ProtocolError => Log.error(e.getMessage); 1
        case e: Standby.Ended      => if (e.status == 0) Log.info(e.getMessage) else Log.error(e.getMessage); e.status
        case e: Exception          => Log.error(s"launcher failed: ${e.getClass.getSimpleName}: ${e.getMessage}"); 1
      }
    System.exit(code)
  }

  private def run(args: Array[String]): Int = {
    Log.debug {
      val age = ProcessHandle.current().info().startInstant().map[Long](t => System.currentTimeMillis() - t.toEpochMilli)
      s"launcher started ${age.orElse(-1L)} ms after its process (the JVM's own start)"
    }
    val random = new SecureRandom()
    val given = Options.parse(args, sys.env.get)
    val opts = Standby.identity(sys.env.get).fold(given) { case (sid, pool) => claimed(args, given, sid, pool, random) }
    val kid = opts.kernelId
    val bindAddr = InetAddress.getByName(opts.kernelIp)
    val reportedIp = if (bindAddr.isAnyLocalAddress) hostAddress() else bindAddr.getHostAddress

    val commKey = Protocol.randomBytes(random, Protocol.CommKeyBytes)
    val commSocket = Ports.listen(bindAddr, opts.portRange, Set.empty, random)
    // Held until the JVM exits: Toree binds on top of them (Ports.reserve), so the ports are never free in between.
    val reservations = Ports.reserve(bindAddr, opts.portRange, 5, Set(commSocket.getLocalPort), random)
    val Seq(shell, iopub, stdin, control, hb) = reservations.map(Ports.portOf)
    val info = ConnectionInfo(
      shellPort = shell,
      iopubPort = iopub,
      stdinPort = stdin,
      controlPort = control,
      hbPort = hb,
      ip = reportedIp,
      key = hex(Protocol.randomBytes(random, 32)),
      kernelName = "",
      commPort = commSocket.getLocalPort,
      commKey = Protocol.b64(commKey),
      launchToken = opts.launchToken,
      pid = Some(ProcessHandle.current().pid()),
      pgid = processGroup(),
      kernelId = kid,
      launcher = Some(LauncherVersion)
    )
    val profile = writeProfile(kid, info.profileJson(bindAddr.getHostAddress))
    val toreeArgs = Options.toreeArgs(opts, profile.toString)
    val kernel = new InProcessToree(Options.alternateSigint(toreeArgs))
    kernel.installEarlyInterruptHandler()

    new CommServer(commSocket, commKey, kernel, random).start()
    Log.info(s"kernel $kid: ports shell=$shell iopub=$iopub stdin=$stdin control=$control hb=$hb comm=${commSocket.getLocalPort}")
    val probeAddr = if (bindAddr.isAnyLocalAddress) InetAddress.getLoopbackAddress else bindAddr
    // PUBLIC_KEY is parsed and the report sealed on the reporter thread: the JVM's first KeyFactory, AES and
    // RSA-OAEP (provider lookup, class loading, cold big-integer arithmetic: about a second of a loaded host's time)
    // then overlap Toree's start on the other core instead of delaying it. A bad key still ends the launch, before
    // any report: the launcher exits 1 with the protocol's message while Toree is still starting.
    val reporter = new Thread(() => reportOnceListening(kernel, opts.responseAddress,
      () => Protocol.sealReport(info.reportJson, kid, Protocol.loadPublicKey(opts.publicKey), random), kid, probeAddr,
      Seq(shell, iopub, stdin, control, hb)), "kernelfleet-report")
    reporter.setDaemon(true)
    reporter.start()
    Log.info(s"kernel $kid: starting Apache Toree (spark context: ${opts.sparkInitMode})")
    kernel.runToree(toreeArgs)
    Log.info(s"kernel $kid: Apache Toree stopped")
    0
  }

  /** Standby mode (protocol 2.1): warm up without a kernel id, key or port, register, wait for the claim, take on its
   * environment and working directory, and return the options a cold launch of the claimed kernel would have had. */
  private def claimed(args: Array[String], standby: Options, sid: String, pool: String, random: SecureRandom): Options = {
    Warmup.prepare()
    val claim = Standby.awaitClaim(standby, sid, pool, random, c =>
      Try(PortRange.parse(Some(c.portRange))).failed.toOption.map(e => s"port range: ${e.getMessage}")
        .orElse(ProcessState.apply(c.env, c.workingDir)))
    val env = (name: String) => if (name == "LAUNCH_TOKEN") Some(claim.launchToken) else sys.env.get(name)
    Options.parse(args, env).copy(kernelId = claim.kernelId, launchToken = claim.launchToken,
      portRange = PortRange.parse(Some(claim.portRange)))
  }

  /** Send the report once Toree listens on all five ports, never before: a Toree that stops first is not reported
   * (the launcher exits and the server fails the launch with our output). Toree binds from its own actor threads and
   * says nothing when it is done, so this probes with a growing interval; it runs once per launch, on this thread. */
  private def reportOnceListening(kernel: InProcessToree, address: String, seal: () => String, kid: String,
                                  probeAddr: InetAddress, ports: Seq[Int]): Unit = {
    val sealStarted = System.nanoTime()
    val sealedReport =
      try seal()
      catch {
        case e: Protocol.ProtocolError => Log.error(e.getMessage); System.exit(1); return
        case e: Exception =>
          Log.error(s"launcher failed: ${e.getClass.getSimpleName}: ${e.getMessage}"); System.exit(1); return
      }
    Log.debug(s"kernel $kid: report sealed in ${(System.nanoTime() - sealStarted) / 1000000} ms")
    var wait = FirstListenProbeMillis
    while (!Ports.allListening(probeAddr, ports)) {
      if (!kernel.alive) return
      Thread.sleep(wait)
      wait = math.min(wait * 2, MaxListenProbeMillis)
    }
    Log.debug(s"kernel $kid: Apache Toree listens on ${ports.mkString(",")}")
    try {
      Report.send(address, sealedReport, kid)
      Log.info(s"kernel $kid: report accepted")
    } catch {
      case e: Report.Rejected =>
        Log.error(e.getMessage); System.exit(1)
      case e: Exception =>
        Log.error(s"launcher failed: ${e.getClass.getSimpleName}: ${e.getMessage}"); System.exit(1)
    }
  }

  private def hex(bytes: Array[Byte]): String = bytes.map(b => f"${b & 0xff}%02x").mkString

  /** The host's address for the report when binding all interfaces: the resolver's answer, else the first
   * non-loopback IPv4 address. The server may still replace it with the address it knows the host by. */
  private def hostAddress(): String =
    Try(InetAddress.getLocalHost).toOption.filterNot(_.isLoopbackAddress).map(_.getHostAddress).getOrElse {
      NetworkInterface.getNetworkInterfaces.asScala
        .filter(n => Try(n.isUp && !n.isLoopback).getOrElse(false))
        .flatMap(_.getInetAddresses.asScala)
        .collectFirst { case a: Inet4Address => a.getHostAddress }
        .getOrElse("127.0.0.1")
    }

  /** The process group from /proc (the JDK has no API for it); None off Linux. */
  private def processGroup(): Option[Long] =
    Try {
      val stat = new String(Files.readAllBytes(Paths.get("/proc/self/stat")), UTF_8)
      // Fields after the command name, which is in parentheses and may itself contain spaces or parentheses.
      stat.substring(stat.lastIndexOf(')') + 2).split(' ')(2).toLong
    }.toOption

  /** Toree's connection file, readable only by us (it holds the kernel's HMAC key) and removed at exit. */
  private def writeProfile(kernelId: String, json: String): Path = {
    val dir = Files.createTempDirectory("kernelfleet-toree-", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")))
    val file = dir.resolve(s"kernel-$kernelId.json")
    Files.write(file, json.getBytes(UTF_8))
    Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"))
    file.toFile.deleteOnExit()
    dir.toFile.deleteOnExit()
    file
  }

  /** Toree in this JVM, controlled from the comm port. */
  final class InProcessToree(interruptSignal: String) extends KernelControl {
    import sun.misc.{Signal, SignalHandler}

    private val done = new CountDownLatch(1)
    private val signal = new Signal(interruptSignal)
    @volatile private var exiting = false
    @volatile private var toreeLoader: ClassLoader = _
    @volatile private var toreeHandler: SignalHandler = _

    def alive: Boolean = done.getCount > 0 && !exiting

    /** Until Toree installs its own handler the interrupt signal would meet the JVM's default action, which ends the
     * process; this one holds the place. */
    private val placeholder: SignalHandler = (_: Signal) => Log.info("interrupt before Apache Toree is ready: no cell to interrupt")

    /** Toree's handler runs on the JVM's signal thread, whose context class loader is null. Its interrupt touches the
     * Spark session, and if that is the first use of Spark in a lazy or none kernel, Spark's initialisation fails on
     * the null loader and leaves Spark unusable for the whole JVM. So every delivery goes through this wrapper, which
     * runs Toree's handler with the class loader Toree was started with. */
    private val wrapper: SignalHandler = (_: Signal) => deliver()

    def installEarlyInterruptHandler(): Unit = { Signal.handle(signal, placeholder); () }

    def runToree(args: Seq[String]): Unit =
      try {
        toreeLoader = Thread.currentThread.getContextClassLoader
        val main = Class.forName("org.apache.toree.Main", true, toreeLoader)
        main.getMethod("main", classOf[Array[String]]).invoke(null, args.toArray)
      } catch {
        case e: java.lang.reflect.InvocationTargetException if e.getCause != null => throw e.getCause
      } finally done.countDown()

    /** Comm-port interrupt: adopt Toree's handler if it has been installed since, then run it off the comm thread. */
    def interrupt(): Unit = {
      synchronized {
        val previous = Signal.handle(signal, wrapper)
        if (previous != null && (previous ne placeholder) && (previous ne wrapper) &&
            (previous ne SignalHandler.SIG_DFL) && (previous ne SignalHandler.SIG_IGN)) toreeHandler = previous
      }
      val t = new Thread(() => deliver(), "kernelfleet-interrupt")
      t.setDaemon(true)
      t.start()
    }

    private def deliver(): Unit = Option(toreeHandler) match {
      case None => Log.info("interrupt before Apache Toree is ready: no cell to interrupt")
      case Some(handler) =>
        val thread = Thread.currentThread
        val saved = thread.getContextClassLoader
        thread.setContextClassLoader(toreeLoader)
        try handler.handle(signal)
        catch { case e: Throwable => Log.warn(s"Apache Toree's interrupt handler failed: ${e.getClass.getName}: ${e.getMessage}") }
        finally thread.setContextClassLoader(saved)
    }

    /** Protocol 2.2's signal op, after the reply went out. Toree's interrupt signal goes the interrupt's way (its
     * handler with Toree's class loader); any other is raised on this JVM, which is the kernel: SIGQUIT prints a
     * thread dump and Toree runs on, SIGHUP exits through the shutdown hooks, SIGUSR1 runs a handler that code in the
     * kernel installed with sun.misc.Signal (without one the JVM ends, as the signal's default action says). */
    def sendSignal(name: String): Unit = {
      val short = name.stripPrefix("SIG")
      if (short == interruptSignal) interrupt()
      else Signal.raise(new Signal(short))
    }

    def terminate(): Unit = exit(143)

    def kill(): Unit = {
      exiting = true
      Runtime.getRuntime.halt(137)
    }

    def shutdown(graceSeconds: Int): Unit = {
      if (!done.await(graceSeconds.toLong, TimeUnit.SECONDS)) {
        Log.info(s"Apache Toree still running ${graceSeconds}s after the shutdown request: terminating it")
        exit(143)
      } else exit(0)
    }

    /** Exit with shutdown hooks (Toree stops its interpreters and Spark), but halt if they hang. */
    private def exit(code: Int): Unit = {
      exiting = true
      val watchdog = new Thread(() => {
        Thread.sleep(TimeUnit.SECONDS.toMillis(TerminateWatchdogSeconds))
        Runtime.getRuntime.halt(137)
      }, "kernelfleet-exit-watchdog")
      watchdog.setDaemon(true)
      watchdog.start()
      val exiter = new Thread(() => System.exit(code), "kernelfleet-exit")
      exiter.setDaemon(true)
      exiter.start()
    }
  }
}
