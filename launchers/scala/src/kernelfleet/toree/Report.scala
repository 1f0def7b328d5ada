package kernelfleet.toree

import java.net.{ConnectException, InetSocketAddress, Socket, SocketTimeoutException}
import java.nio.charset.StandardCharsets.UTF_8

/** Sends the sealed report to RESPONSE_ADDRESS and reads the broker's one-line verdict. */
object Report {
  final class Rejected(message: String) extends Exception(message)
  private final class NotConnected(message: String) extends java.io.IOException(message)

  /** docs/launcher-vectors.json "report": a refused connection is retried, the pause doubling from 50 ms to at most
   * 500 ms, until ConnectWindowMillis after the first try; one attempt without any answer fails after
   * ConnectTimeoutMillis; the verdict must arrive within ReplyTimeoutMillis. */
  val ConnectWindowMillis = 5000
  val ConnectTimeoutMillis = 10000
  val ReplyTimeoutMillis = 30000

  /** `host:port` or `[v6]:port`. */
  def parseAddress(address: String): (String, Int) = {
    val a = address.trim
    val (host, portText) =
      if (a.startsWith("[")) {
        val end = a.indexOf("]:")
        if (end < 0) throw new IllegalArgumentException(s"response address '$a' must look like [v6]:port")
        (a.substring(1, end), a.substring(end + 2))
      } else {
        val colon = a.lastIndexOf(':')
        if (colon <= 0 || a.indexOf(':') != colon) throw new IllegalArgumentException(s"response address '$a' must look like host:port")
        (a.substring(0, colon), a.substring(colon + 1))
      }
    val port =
      try portText.toInt
      catch { case _: NumberFormatException => throw new IllegalArgumentException(s"response address '$a' has no port number") }
    if (port < 1 || port > 65535) throw new IllegalArgumentException(s"response address '$a' has no valid port")
    (host, port)
  }

  /** Deliver the line; returns normally only on `{"ok":true}`. Connection refusals are retried a few times (the
   * broker may be restarting); a rejection is final. */
  def send(address: String, line: String, kernelId: String): Unit = {
    val (host, port) = parseAddress(address)
    val deadline = System.nanoTime() + ConnectWindowMillis * 1000000L
    var pause = 50L
    while (true) {
      try return deliver(host, port, line)
      catch {
        // Only a failed connect is retried: once the line is sent, a second copy would be refused as a replay.
        case e: NotConnected if System.nanoTime() + pause * 1000000L <= deadline =>
          Log.debug(s"kernel $kernelId: cannot reach the response address $host:$port (${e.getMessage}); retrying")
          Thread.sleep(pause)
          pause = math.min(pause * 2, 500L)
      }
    }
  }

  private def deliver(host: String, port: Int, line: String): Unit = {
    val socket = new Socket()
    try {
      try socket.connect(new InetSocketAddress(host, port), ConnectTimeoutMillis)
      catch { case e @ (_: ConnectException | _: SocketTimeoutException) => throw new NotConnected(e.getMessage) }
      socket.setSoTimeout(ReplyTimeoutMillis)
      val out = socket.getOutputStream
      out.write(line.getBytes(UTF_8))
      out.flush()
      val reply = CommServer.readLine(socket.getInputStream, Protocol.MaxReplyBytes)
        .getOrElse(throw new Rejected("the response broker closed the connection without a verdict"))
      val ok =
        try Json.bool(Json.parseObject(reply), "ok")
        catch { case _: Json.JsonError => None }
      ok match {
        case Some(true) => ()
        case Some(false) => throw new Rejected("the response broker rejected the report")
        case None        => throw new Rejected("the response broker's reply is not {\"ok\":...}")
      }
    } finally socket.close()
  }
}
