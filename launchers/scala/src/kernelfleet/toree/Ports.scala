package kernelfleet.toree

import java.net.{InetAddress, InetSocketAddress, ServerSocket, Socket, StandardSocketOptions}
import java.nio.channels.SocketChannel
import java.security.SecureRandom
import scala.util.Try

/** PORT_RANGE (`lower..upper`, inclusive; `0..0` = any free port) and port choice.
 *
 * Retries are bounded (Gateway Provisioners' Scala launcher looped forever on a full range) and the upper end is
 * included (GP's excluded it).
 */
final case class PortRange(lower: Int, upper: Int) {
  def unrestricted: Boolean = lower == 0 && upper == 0
  def size: Int = if (unrestricted) 0 else upper - lower + 1
  override def toString: String = s"$lower..$upper"
}

object PortRange {
  val MinPort = 1024
  val MaxPort = 65535
  /** docs/protocol.md section 5: each end 1-5 ASCII digits (toInt alone also took '+1024' and other scripts' digits). */
  private val Grammar = "([0-9]{1,5})\\.\\.([0-9]{1,5})".r

  /** The launcher's --port-range / PORT_RANGE; the cases all three launchers must agree on are
   * docs/protocol-vectors.json "port_ranges". */
  def parse(text: Option[String]): PortRange = Options.setValue(text).filter(_ != "0..0") match {
    case None => PortRange(0, 0)
    case Some(t) =>
      val (lo, hi) = t match {
        case Grammar(lower, upper) => (lower.toInt, upper.toInt)
        case _ => throw new IllegalArgumentException(
          s"port range '$t' must look like 'lower..upper' with both ends written in digits 0-9, e.g. '40000..41000'")
      }
      if (!(MinPort <= lo && lo <= hi && hi <= MaxPort))
        throw new IllegalArgumentException(s"port range '$t': need $MinPort <= lower <= upper <= $MaxPort")
      PortRange(lo, hi)
  }
}

object Ports {
  /** docs/launcher-vectors.json "ports": five kernel ports and the comm port; random picks per port inside a range. */
  val PortCount = 6
  val TriesPerPort = 50
  /** The comm port's accept queue, as deep as the Python launcher's: 1,000 connections held by someone who merely
   * reaches the port all fit, so the server's connection waits its turn instead of having its SYN dropped (a full
   * queue drops SYNs, and the retransmissions after 1 s and 3 s eat most of the server's comm_timeout). */
  val CommBacklog = 1024

  /** A listening socket on a free port: bound to 0 when unrestricted, else to random ports inside the range. */
  def listen(bindAddress: InetAddress, range: PortRange, taken: Set[Int], random: SecureRandom): ServerSocket = {
    def tryBind(port: Int): Option[ServerSocket] = {
      val s = new ServerSocket()
      s.setReuseAddress(false)
      Try(s.bind(new InetSocketAddress(bindAddress, port), CommBacklog)).toOption.map(_ => s).orElse { s.close(); None }
    }
    if (range.unrestricted) {
      // Port 0: the OS picks; it never repeats a port already bound by this process, but a port probed and released
      // earlier could come back, so skip those.
      Iterator.continually(tryBind(0)).take(TriesPerPort).flatten.find { s =>
        if (taken.contains(s.getLocalPort)) { s.close(); false } else true
      }.getOrElse(throw new IllegalStateException("no free port found"))
    } else {
      Iterator
        .continually(range.lower + random.nextInt(range.size))
        .take(TriesPerPort)
        .filterNot(taken.contains)
        .flatMap(tryBind)
        .toStream
        .headOption
        .getOrElse(throw new IllegalStateException(s"no free port found in PORT_RANGE $range after $TriesPerPort tries"))
    }
  }

  /** `count` distinct free ports for Toree, each held by a reservation that the caller keeps open while Toree runs.
   *
   * A reservation is bound without SO_REUSEADDR (so the bind proves nobody else, another launcher's reservation
   * included, holds the port), then gets SO_REUSEADDR and never listens. On Linux that keeps every other bind and
   * every bind(0)/connect() ephemeral pick off the port, while Toree's JeroMQ listener, whose server socket sets
   * SO_REUSEADDR, binds on top of it: no other process can take the port between the choice and Toree's bind.
   * The Python launcher's ports.py does the same; tests/launchers/test_port_race.py checks the claims. */
  def reserve(bindAddress: InetAddress, range: PortRange, count: Int, taken: Set[Int], random: SecureRandom): Seq[SocketChannel] = {
    val reserved = scala.collection.mutable.ArrayBuffer.empty[SocketChannel]
    def tryReserve(port: Int): Option[SocketChannel] = {
      val channel = SocketChannel.open()
      channel.setOption[java.lang.Boolean](StandardSocketOptions.SO_REUSEADDR, false)
      Try(channel.bind(new InetSocketAddress(bindAddress, port))).toOption.map { _ =>
        channel.setOption[java.lang.Boolean](StandardSocketOptions.SO_REUSEADDR, true)
        channel
      }.orElse { channel.close(); None }
    }
    try {
      (1 to count).foreach { _ =>
        val used = taken ++ reserved.map(portOf)
        val candidates =
          if (range.unrestricted) Iterator.continually(0) // bind(0) never picks a held port
          else Iterator.continually(range.lower + random.nextInt(range.size))
        reserved += candidates.take(TriesPerPort).filterNot(used.contains).flatMap(tryReserve).toStream.headOption
          .getOrElse(throw new IllegalStateException(
            if (range.unrestricted) "no free port found" else s"no free port found in PORT_RANGE $range after $TriesPerPort tries"))
      }
      reserved.toVector
    } catch { case e: Throwable => reserved.foreach(c => Try(c.close())); throw e }
  }

  def portOf(channel: SocketChannel): Int = channel.getLocalAddress.asInstanceOf[InetSocketAddress].getPort

  /** True once something listens on every port: Toree's listeners, since the reservations keep everyone else off. */
  def allListening(address: InetAddress, ports: Seq[Int]): Boolean = ports.forall { port =>
    val probe = new Socket()
    try { probe.connect(new InetSocketAddress(address, port), 1000); true }
    catch { case _: java.io.IOException => false }
    finally Try(probe.close())
  }
}
