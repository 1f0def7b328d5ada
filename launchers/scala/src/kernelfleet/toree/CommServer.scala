package kernelfleet.toree

import java.io.{ByteArrayOutputStream, InputStream, OutputStream}
import java.net.{ServerSocket, Socket, SocketTimeoutException}
import java.nio.charset.StandardCharsets.UTF_8
import java.security.SecureRandom
import java.util.concurrent.Semaphore
import scala.util.Try

/** What the comm port may do to the kernel; the only actions protocol v2 allows (no raw signal numbers). */
trait KernelControl {
  def alive: Boolean
  def interrupt(): Unit
  def terminate(): Unit
  def kill(): Unit
  def shutdown(graceSeconds: Int): Unit
}

/** The authenticated communication port (docs/protocol.md section 4), served on daemon threads.
 *
 * Each connection gets a fresh nonce; a request is acted on only after its MAC over that nonce verifies in constant
 * time, so a recorded request is useless later and nobody without the comm key can interrupt or stop the kernel.
 */
final class CommServer(socket: ServerSocket, commKey: Array[Byte], kernel: KernelControl, random: SecureRandom) {
  private val TimeoutMillis = 5000
  private val MaxConcurrent = 8
  private val slots = new Semaphore(MaxConcurrent)

  def port: Int = socket.getLocalPort

  def start(): Unit = {
    val t = new Thread(() => acceptLoop(), "kernelfleet-comm")
    t.setDaemon(true)
    t.start()
  }

  private def acceptLoop(): Unit =
    while (!socket.isClosed) {
      val conn = Try(socket.accept()).toOption
      conn.foreach { c =>
        if (slots.tryAcquire()) {
          val t = new Thread(() => try handle(c) finally slots.release(), "kernelfleet-comm-conn")
          t.setDaemon(true)
          t.start()
        } else Try(c.close()) // too many open requests at once: someone is flooding the port
      }
    }

  private def handle(conn: Socket): Unit = {
    var after: Option[() => Unit] = None
    try {
      conn.setSoTimeout(TimeoutMillis)
      val out = conn.getOutputStream
      val nonce = Protocol.randomBytes(random, Protocol.NonceBytes)
      write(out, Protocol.greeting(nonce))
      val line = CommServer.readLine(conn.getInputStream, Protocol.MaxCommLineBytes)
      val answer = line match {
        case Left(CommServer.TooLong) => Some(Protocol.reply(ok = false, "error" -> "request too long"))
        case Left(_)                  => None // the peer closed or was too slow: nobody to answer
        case Right(l) =>
          try {
            val req = Protocol.verifyRequest(commKey, nonce, l)
            Log.debug(s"comm request: ${req.op}")
            after = act(req)
            Some(Protocol.reply(ok = true, "alive" -> kernel.alive))
          } catch {
            case e: Protocol.ProtocolError =>
              if (e.getMessage == "unauthenticated") Log.warn(s"refused an unauthenticated comm request from ${conn.getInetAddress.getHostAddress}")
              Some(Protocol.reply(ok = false, "error" -> e.getMessage))
          }
      }
      answer.foreach(a => write(out, a))
    } catch {
      case _: java.io.IOException => ()
    } finally {
      Try(conn.close())
    }
    // Actions that end this process run only after the reply went out, so the server hears it.
    after.foreach(f => f())
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
  }

  private def write(out: OutputStream, s: String): Unit = {
    out.write(s.getBytes(UTF_8))
    out.flush()
  }
}

object CommServer {
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
