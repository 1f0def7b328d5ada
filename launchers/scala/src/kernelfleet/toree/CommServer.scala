package kernelfleet.toree

import java.io.{ByteArrayOutputStream, InputStream, OutputStream}
import java.net.{ServerSocket, Socket, SocketTimeoutException}
import java.nio.charset.StandardCharsets.UTF_8
import java.security.SecureRandom
import java.util.concurrent.{Executors, ThreadLocalRandom, TimeUnit}
import scala.collection.JavaConverters._
import scala.util.Try

/** What the comm port may do to the kernel; the only actions protocol v2 allows (no raw signal numbers). */
trait KernelControl {
  def alive: Boolean
  def interrupt(): Unit
  def terminate(): Unit
  def kill(): Unit
  def shutdown(graceSeconds: Int): Unit
  /** Protocol 2.2: one of Protocol.AllowedSignals that this launcher carries (CommServer.Refused names the others). */
  def sendSignal(name: String): Unit
}

/** The authenticated communication port (docs/protocol.md section 4), served on daemon threads.
 *
 * Each connection gets a fresh nonce; a request is acted on only after its MAC over that nonce verifies in constant
 * time, so a recorded request is useless later and nobody without the comm key can interrupt or stop the kernel.
 *
 * Nobody who can merely reach the port may keep the server's requests out: one deadline covers a connection's whole
 * request (a scheduler closes it then, however slowly its bytes trickle in; the per-read timeout is only a backstop),
 * at most `MaxWaiting` connections wait for their request, and a new one evicts the oldest waiting one of the peer
 * address that holds the most. The server's connection sends its request one round trip after the greeting, so idle
 * or slow connections only ever evict each other (from the server's own address: unless `MaxWaiting` new ones arrive
 * within that round trip; the server then retries once). Refused and evicted connections go into rate-limited warnings with a count.
 *
 * An evicted connection is not reset but parked: its thread lets go of it and it stays open, silent, until its
 * deadline, or a random moment of the period after it (at most `MaxParked` at a time; beyond that, reset). A flood reconnects every connection it loses at once,
 * and each reconnection waits in the accept queue ahead of the server's; resetting evicted connections made the flood
 * churn thousands of connections a second, and a busy JVM then accepted the server's connection only after its
 * comm_timeout (issue 11: a Scala interrupt lost under 1,000 idle connections). Parked, the flood's connections wait
 * out their deadline, the accept queue stays short, and the server's connection is accepted at once.
 */
final class CommServer(socket: ServerSocket, commKey: Array[Byte], kernel: KernelControl, random: SecureRandom) {
  import CommServer._

  /** Connections still waiting for their request line, oldest first; guarded by itself. */
  private val waiting = new java.util.LinkedHashMap[Socket, java.lang.Boolean]()
  /** Evicted connections held open until their deadline; guarded by `waiting`. */
  private val parked = new java.util.HashSet[Socket]()
  private val deadlines = Executors.newSingleThreadScheduledExecutor { (r: Runnable) =>
    val t = new Thread(r, "kernelfleet-comm-deadlines")
    t.setDaemon(true)
    t
  }
  /** Connections are served on reused threads: under a flood the launcher accepts thousands of connections a second
   * (each eviction makes room for the next), and a new thread for each one slows accepting down enough that the
   * server's connection waits in the accept queue past its comm_timeout. */
  private val handlers = Executors.newCachedThreadPool { (r: Runnable) =>
    val t = new Thread(r, "kernelfleet-comm-conn")
    t.setDaemon(true)
    t
  }
  private val warnings = new LogLimiter(WarningIntervalMillis)

  def port: Int = socket.getLocalPort

  def start(): Unit = {
    val t = new Thread(() => acceptLoop(), "kernelfleet-comm")
    t.setDaemon(true)
    t.start()
  }

  private def acceptLoop(): Unit =
    while (!socket.isClosed) {
      Try(socket.accept()).toOption.foreach { c =>
        admit(c)
        deadlines.schedule((() => expire(c)): Runnable, TimeoutMillis.toLong, TimeUnit.MILLISECONDS)
        handlers.execute(() => handle(c))
      }
    }

  /** Make room for `conn` by evicting the oldest connections that have not delivered a request. */
  private def admit(conn: Socket): Unit = {
    val evicted = waiting.synchronized {
      val out = scala.collection.mutable.ArrayBuffer.empty[(Socket, Boolean)]
      while (waiting.size >= MaxWaiting) {
        val victim = oldestOfBusiestPeer()
        waiting.remove(victim)
        out += victim -> (parked.size < MaxParked && parked.add(victim))
      }
      waiting.put(conn, java.lang.Boolean.TRUE)
      out
    }
    evicted.foreach { case (old, park) =>
      warnings.warn("evicted", s"comm port full ($MaxWaiting connections without a request); set aside the oldest, from ${peer(old)}")
      // Parked: its reader sees the end of input and returns its thread; the peer sees nothing until the deadline.
      if (park) Try(old.shutdownInput()) else abort(old)
    }
  }

  /** The oldest waiting connection of the peer address holding the most waiting connections (caller holds the lock).
   * An attacker elsewhere on the network thus only evicts its own connections, never the server's. */
  private def oldestOfBusiestPeer(): Socket = {
    val conns = waiting.keySet.asScala.toVector
    val counts = conns.groupBy(peer).map { case (k, v) => k -> v.size }
    val most = counts.values.max
    conns.find(c => counts(peer(c)) == most).get
  }

  /** True when `conn` was still waiting (and no longer is). */
  private def delivered(conn: Socket): Boolean = waiting.synchronized(waiting.remove(conn) != null)

  private def expire(conn: Socket): Unit =
    if (delivered(conn)) {
      warnings.warn("timed out", s"comm connection from ${peer(conn)} sent no complete request within ${TimeoutMillis / 1000}s; closed")
      abort(conn)
    } else if (isParked(conn)) {
      // Released at a random moment of the next deadline period: a flood's connections, accepted in one burst, would
      // otherwise all be reset together and come back together, a burst that the server's connection waits behind.
      val release: Runnable = () => if (unpark(conn)) abort(conn)
      deadlines.schedule(release, ThreadLocalRandom.current().nextLong(TimeoutMillis.toLong), TimeUnit.MILLISECONDS)
    }

  private def unpark(conn: Socket): Boolean = waiting.synchronized(parked.remove(conn))

  private def isParked(conn: Socket): Boolean = waiting.synchronized(parked.contains(conn))

  private def handle(conn: Socket): Unit = {
    var after: Option[() => Unit] = None
    try {
      conn.setSoTimeout(TimeoutMillis) // a backstop only: `expire` closes the connection at its deadline
      val out = conn.getOutputStream
      val nonce = Protocol.randomBytes(random, Protocol.NonceBytes)
      write(out, Protocol.greeting(nonce))
      val line = CommServer.readLine(conn.getInputStream, Protocol.MaxCommLineBytes)
      if (delivered(conn)) { // else evicted or expired meanwhile: the socket is closed, nobody to answer
        val answer = line match {
          case Left(CommServer.TooLong) => Some(refuse(conn, "request too long"))
          case Left(_)                  => None // the peer closed or was too slow: nobody to answer
          case Right(l) =>
            try {
              val req = Protocol.verifyRequest(commKey, nonce, l)
              Log.debug(s"comm request: ${req.op}")
              after = act(req)
              Some(Protocol.reply(ok = true, "alive" -> kernel.alive))
            } catch {
              case e: Protocol.ProtocolError => Some(refuse(conn, e.getMessage))
            }
        }
        answer.foreach(a => write(out, a))
      }
    } catch {
      case _: java.io.IOException => ()
    } finally {
      delivered(conn)
      if (!isParked(conn)) Try(conn.close()) // a parked connection is closed by its deadline
    }
    // Actions that end this process run only after the reply went out, so the server hears it.
    after.foreach(f => f())
  }

  private def refuse(conn: Socket, error: String): String = {
    warnings.warn(s"refused: $error", s"refused a comm request from ${peer(conn)}: $error")
    Protocol.reply(ok = false, "error" -> error)
  }

  private def peer(conn: Socket): String = Try(conn.getInetAddress.getHostAddress).getOrElse("?")

  /** Close at once with a reset, so the peer (and the server's retry) learns immediately. */
  private def abort(conn: Socket): Unit = {
    Try(conn.setSoLinger(true, 0))
    Try(conn.close())
  }

  /** Run the op (or return what to run after replying). */
  private def act(req: Protocol.CommRequest): Option[() => Unit] = req.op match {
    case "ping" => None
    case "interrupt" =>
      Log.info("interrupt requested over the comm port")
      kernel.interrupt(); None
    case "terminate" =>
      Log.info("terminate requested over the comm port")
      Some(() => kernel.terminate())
    case "kill" =>
      Log.info("kill requested over the comm port")
      Some(() => kernel.kill())
    case "shutdown" =>
      val grace = Json.int(req.params, "grace").getOrElse(5).max(0).min(60)
      Log.info(s"shutdown requested over the comm port (grace ${grace}s)")
      Some(() => kernel.shutdown(grace))
    case "signal" =>
      val name = Protocol.signalName(req.params)
      if (RefusedSignals.contains(name)) throw new Protocol.ProtocolError(NotSupported)
      Log.info(s"$name requested over the comm port")
      Some(() => kernel.sendSignal(name))
  }

  private def write(out: OutputStream, s: String): Unit = {
    out.write(s.getBytes(UTF_8))
    out.flush()
  }
}

object CommServer {
  /** Allowed by the protocol, refused here: Toree is this JVM, so SIGSTOP or SIGTSTP would stop the comm port with it
   * and leave the server nothing to send SIGCONT, an interrupt, a shutdown or a kill through. */
  val RefusedSignals: Set[String] = Set("SIGSTOP", "SIGTSTP")
  val NotSupported = "signal not supported by this launcher"
  val TimeoutMillis = 5000
  val MaxWaiting = 64
  val MaxParked = 1024
  val WarningIntervalMillis = 10000L

  /** At most one warning per key and interval; the next line that gets through says how many were left out.
   * Keys are a small fixed set (the refusal reasons), so the state stays small. */
  final class LogLimiter(intervalMillis: Long) {
    private val last = scala.collection.mutable.Map.empty[String, Long]
    private val suppressed = scala.collection.mutable.Map.empty[String, Int]

    def warn(key: String, message: String): Boolean = {
      val line = synchronized {
        val now = System.nanoTime() / 1000000L
        if (last.get(key).exists(now - _ < intervalMillis)) {
          suppressed(key) = suppressed.getOrElse(key, 0) + 1
          None
        } else {
          last(key) = now
          val skipped = suppressed.remove(key).getOrElse(0)
          Some(if (skipped > 0) s"$message ($skipped similar events in the last ${intervalMillis / 1000} s not logged)" else message)
        }
      }
      line.foreach(l => Log.warn(l))
      line.isDefined
    }
  }

  sealed trait ReadFailure
  case object Closed extends ReadFailure
  case object TooLong extends ReadFailure
  case object TimedOut extends ReadFailure

  /** One `\n`-terminated line of at most `max` bytes (newline excluded). */
  def readLine(in: InputStream, max: Int): Either[ReadFailure, String] = {
    val buf = new ByteArrayOutputStream()
    try {
      var b = in.read()
      while (b != -1 && b != '\n'.toInt) {
        if (buf.size() >= max) return Left(TooLong)
        buf.write(b)
        b = in.read()
      }
      if (b == -1 && buf.size() == 0) Left(Closed) else Right(new String(buf.toByteArray, UTF_8))
    } catch {
      case _: SocketTimeoutException => Left(TimedOut)
    }
  }
}
